/*
 * cache.h - the typed result cache (DESIGN section 5), in memory or on Redis.
 *
 * Jobs and the API ask the same questions over and over ("latest odds for match 1234", "form of
 * Arsenal over the last 6 matches"); the answers are cached by *type*, each with its own TTL from
 * the MaraBet spec:
 *
 *     odds 300 s, stats 1800 s, predictions 600 s, static 86400 s
 *
 * An entry is addressed by its type and a filters value (usually an object). The key is
 *
 *     <prefix>:cache:<type>:<canonical filters>
 *
 * where the canonical form is compact JSON with object keys sorted at every depth and integral
 * reals written as integers, so {"b":1,"a":2.0} and {"a":2,"b":1} are the same question. A
 * canonical form longer than CACHE_KEY_INLINE_MAX bytes is replaced by its first
 * CACHE_KEY_HEAD_BYTES bytes (cut on a UTF-8 boundary), "~" and the SHA-1 of the whole form in
 * hex, so keys stay short while the beginning stays readable (and matchable by patterns).
 *
 * Values are JSON. Each stored entry carries a small header: one encoding byte (JSON text, or
 * zlib-deflated JSON text for values at or above compress_threshold bytes), the instant it goes
 * stale (created + TTL) and the instant it must be gone (created + stale_factor x TTL). Between
 * the two the entry is *stale*: get() treats it as a miss, but get_or_compute() falls back to it
 * when the compute fails, and says so.
 *
 * Backends: "memory" (the embedded default: sharded, LRU-bounded by bytes) and "redis" (shared by
 * every daemon; its own URL so it can live on a Redis configured with allkeys-lru while the
 * broker's Redis keeps noeviction).
 *
 * A cache that is down never fails anything: get() reports a miss, set() reports success without
 * storing (counted as sets_skipped), get_or_compute() computes. One warning is logged when an
 * outage starts and one info line when it ends.
 *
 * Thread-safety: every function below may be called from any thread on the same cache, except
 * cache_close(), which must be the last call.
 */
#ifndef BP_CORE_CACHE_H
#define BP_CORE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "betpipe/cache.h"
#include "betpipe/status.h"

typedef struct cache cache;

typedef enum cache_type {
    CACHE_ODDS = 0,
    CACHE_STATS,
    CACHE_PREDICTIONS,
    CACHE_STATIC,
    CACHE_TYPE_COUNT
} cache_type;

/* Canonical filter forms up to this many bytes appear in the key verbatim. */
#define CACHE_KEY_INLINE_MAX 128
/* Longer ones keep this many leading bytes, then "~" and 40 hex digits of SHA-1. */
#define CACHE_KEY_HEAD_BYTES 64

/* "odds" -> CACHE_ODDS ...; BP_E_INVAL naming the unknown type and listing the known ones. */
int cache_type_parse(const char *name, cache_type *out, bp_error *err);
/* CACHE_ODDS -> "odds". Static string. */
const char *cache_type_name(cache_type t);

/* ---- opening and closing ----------------------------------------------------------------- */

/*
 * Open a cache. `cfg` is the "cache" section of the config file (may be NULL: all defaults):
 *
 *   {
 *     "backend": "memory" | "redis",    default "memory", or "redis" when a url is given
 *     "url": "redis://host:6379/2" | "unix:///run/redis.sock?db=2",   the cache's own Redis
 *     "ttl": {"odds": 300, "stats": "30m", "predictions": 600, "static": "1d"},
 *                                        seconds (number) or a duration string; > 0
 *     "stale_factor": 6,                 entries live up to stale_factor x TTL (>= 1)
 *     "max_bytes": 67108864,             memory backend bound: keys, stored values, entry
 *                                        bookkeeping and the decoded copies it keeps of
 *                                        uncompressed values (estimated); one entry may use
 *                                        at most max_bytes / 16
 *     "compress_threshold": 1024,        deflate values whose JSON is at least this long
 *                                        (0: never compress)
 *     "lock_ms": 5000                    Redis single-flight lock lifetime; other daemons wait
 *                                        at most this long for the value before computing
 *   }
 *
 * Unknown keys (at the top level and in "ttl") are BP_E_CONFIG errors that name the key. The
 * environment overrides the file: BETPIPE_CACHE_BACKEND, BETPIPE_CACHE_URL,
 * BETPIPE_CACHE_TTL_ODDS, BETPIPE_CACHE_TTL_STATS, BETPIPE_CACHE_TTL_PREDICTIONS,
 * BETPIPE_CACHE_TTL_STATIC (durations: "300", "5m", "1d").
 *
 * `prefix` namespaces the keys (e.g. "betpipe"); NULL means "betpipe". A Redis backend that
 * cannot be reached at open time is not an error: the cache starts degraded and recovers by
 * itself. The cfg is only read during the call. On success *out is a new cache that the caller
 * closes with cache_close().
 */
int cache_open(const json_t *cfg, const char *prefix, cache **out, bp_error *err);
/* Flush counters (Redis), close the backend and free everything. NULL is a no-op. */
void cache_close(cache *c);

/* "memory" or "redis". */
const char *cache_backend_name(const cache *c);
/* The effective fresh TTL of a type in milliseconds. */
int64_t cache_ttl_ms(const cache *c, cache_type t);
/* The effective stale factor. */
double cache_stale_factor(const cache *c);
/* Non-zero while the backend is reachable (always for memory). */
int cache_available(const cache *c);

/* ---- keys -------------------------------------------------------------------------------- */

/* The canonical form of `filters` (NULL counts as {}): compact JSON, keys sorted recursively,
 * integral reals as integers. *out_text is a new heap string the caller frees. */
int cache_canonical(const json_t *filters, char **out_text, bp_error *err);
/* The full key of (type, filters) in this cache, e.g. "betpipe:cache:odds:{\"match\":12}".
 * *out_key is a new heap string the caller frees. */
int cache_key(const cache *c, const char *type, const json_t *filters, char **out_key,
              bp_error *err);

/* ---- entries ----------------------------------------------------------------------------- */

/* Fresh hit: BP_OK and a new reference in *out_value. Miss (absent, stale, or backend down):
 * BP_E_NOTFOUND. Bad type or filters: BP_E_INVAL. Counts a hit or a miss. */
int cache_get(cache *c, const char *type, const json_t *filters, json_t **out_value, bp_error *err);
/* Batch get: out_values[i] gets a new reference for each fresh hit and NULL for each miss.
 * On Redis this is one MGET. Returns BP_OK even when everything missed. */
int cache_mget(cache *c, const char *type, const json_t *const *filters, size_t n,
               json_t **out_values, bp_error *err);
/* Store `value` (borrowed) under the type's TTL. BP_OK also when the backend is down (the set is
 * skipped and counted). BP_E_LIMIT when one value is too large for the memory bound. */
int cache_set(cache *c, const char *type, const json_t *filters, const json_t *value,
              bp_error *err);
/* Batch set (one pipeline on Redis). filters[i] -> values[i]. */
int cache_mset(cache *c, const char *type, const json_t *const *filters,
               const json_t *const *values, size_t n, bp_error *err);
/* Remove one entry. BP_OK whether or not it existed (and when the backend is down). */
int cache_del(cache *c, const char *type, const json_t *filters, bp_error *err);

/*
 * Cache-aside. A fresh hit is returned at once. On a miss, `compute` runs once for all the
 * concurrent callers of the same key in this process (the others wait and get a copy of its
 * value); on Redis a short lock (SET NX PX) also makes other daemons wait up to lock_ms for the
 * value instead of computing it too. The computed value is stored, and returned as a new
 * reference in *out_value with *out_stale = 0.
 *
 * When compute fails and a stale entry (past its TTL, within the stale limit) exists, that
 * value is returned with *out_stale = 1, BP_OK, and a stale serve is counted. When compute fails
 * and nothing stale exists, compute's status and error are returned. `compute` is called
 * without any cache lock held; it must return a new reference on success. out_stale may be NULL.
 */
int cache_get_or_compute(cache *c, const char *type, const json_t *filters,
                         bp_cache_compute_fn compute, void *ud, json_t **out_value, int *out_stale,
                         bp_error *err);

/* How many callers are waiting, right now, for another caller's compute of (type, filters) in
 * this process (0 when none is running). For tests and diagnostics. */
int cache_flight_waiters(cache *c, const char *type, const json_t *filters);

/* ---- maintenance, statistics and the CLI ------------------------------------------------- */

/*
 * Drop every entry of `type` (NULL: every type) whose key part - the canonical filters, or for
 * long ones head~sha1 - matches the glob `pattern` (NULL or "*": all). Glob syntax is Redis's:
 * * ? [abc] [^a-z] and \ to escape (so a literal '[' in JSON is written "\["). On Redis this is
 * SCAN MATCH ... COUNT, never KEYS, with UNLINK in batches. *out_removed (may be NULL) gets the
 * number of entries removed. BP_E_UNAVAILABLE when the backend is down.
 */
int cache_invalidate(cache *c, const char *type, const char *pattern, uint64_t *out_removed,
                     bp_error *err);

/*
 * Evict every entry past its stale limit (what maint.cleanup_cache runs). *out_report is a new
 * object:
 *   {"backend": "memory", "evicted": 12, "bytes_freed": 34567, "types": {
 *      "odds": {"evicted": 10, "bytes_freed": 30000, "keys": 120, "bytes": 560000}, ...}}
 * where keys/bytes are what remains. BP_E_UNAVAILABLE when the backend is down.
 */
int cache_cleanup(cache *c, json_t **out_report, bp_error *err);

/*
 * Statistics. *out_stats is a new object:
 *   {"backend": "memory", "available": true, "max_bytes": 67108864, "stale_factor": 6,
 *    "types": {"odds": {"ttl_s": 300, "hits": 10, "misses": 2, "hit_rate": 0.833,
 *                       "stale_serves": 0, "sets": 2, "sets_skipped": 0, "evictions": 0,
 *                       "expired": 0, "keys": 2, "bytes": 812}, ...},
 *    "totals": {same counters summed, hit_rate over all types}}
 * hit_rate is hits / (hits + misses), 0 when there was no lookup. On Redis the counters are
 * those of every process sharing the cache (each flushes its own into the hash
 * "<prefix>:cache-stats" about once a second - an idle process too, from a thread - and on
 * close; this process's own counts are a floor, since on an allkeys-lru Redis that hash may be
 * evicted too - volatile-lru, which only evicts keys with an expiry such as every cache entry,
 * keeps it), keys/bytes come from a SCAN
 * (a walk of the cache's keys: fine for the CLI and a metrics scrape, not for a hot loop), and
 * "max_bytes" is absent; when Redis is down the counters are this process's own, keys/bytes are
 * absent and "available" is false.
 *
 * Redis evicts (maxmemory policy) and expires (PX) the entries by itself, and counts that only
 * for the whole server, so on Redis "evictions" and "expired" are null (not counted per type)
 * and "server" holds what INFO says for the whole server - which may hold more than this cache:
 *   "server": {"evicted_keys": 0, "expired_keys": 12, "maxmemory_policy": "allkeys-lru",
 *              "maxmemory": 0, "used_memory": 1234567}
 */
int cache_stats(cache *c, json_t **out_stats, bp_error *err);

/*
 * `betpipe cache get TYPE KEY`: KEY is either JSON filters ('{"match":12}', canonicalised) or,
 * when it does not parse as JSON, the raw key part as shown by the key (e.g. a hashed
 * 'head~sha1'). Returns BP_OK and a new object
 *   {"type": "odds", "key": "<full key>", "value": <json>, "stale": false,
 *    "fresh_until": "2026-...Z", "expires_at": "2026-...Z", "encoding": "json" | "zlib",
 *    "stored_bytes": 123}
 * for fresh and stale entries alike (this does not count as a hit or miss), BP_E_NOTFOUND when
 * there is no entry, BP_E_UNAVAILABLE when the backend is down.
 */
int cache_inspect(cache *c, const char *type, const char *key_text, json_t **out_entry,
                  bp_error *err);

/*
 * `betpipe cache clear [TYPE]`: remove every entry of TYPE (NULL: all types). *out_report (may
 * be NULL) gets {"removed": N, "types": {"odds": n, ...}}. BP_E_UNAVAILABLE when the backend is
 * down, BP_E_INVAL for an unknown type.
 */
int cache_clear(cache *c, const char *type, json_t **out_report, bp_error *err);

/* ---- helpers shared with the backends (exposed for tests) -------------------------------- */

/* Redis-style glob match of the whole of `str` (length len) against `pattern`. 1 = match. */
int cache_glob_match(const char *pattern, const char *str, size_t len);
/* SHA-1 of data into 20 bytes. */
void cache_sha1(const void *data, size_t len, unsigned char out[20]);

#endif
