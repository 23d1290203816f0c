/*
 * cache_redis.c - the shared cache backend: entries in a Redis of their own.
 *
 * Every daemon (and the CLI) that points at the same cache URL sees the same entries. Each
 * entry is one Redis string holding cache.c's blob, set with PX = its stale limit, so Redis
 * drops it by itself once even stale fallback may no longer use it. The cache can live on a
 * Redis configured with maxmemory + allkeys-lru: losing an entry to eviction is just a miss.
 *
 * Connections come from redis_conn.c (URL parsing, timeouts, reconnect with backoff, scripts,
 * pipelining). A redis_conn serves one thread at a time, so the backend keeps a small pool:
 * an operation takes a connection, runs its one command (or one pipeline), and gives it back.
 * Connections are opened on first need, and "lazy", so a Redis that is down at start-up is not
 * an error: cache.c sees BP_E_UNAVAILABLE and degrades until the server is back.
 *
 * Batches: MGET for batch gets; SET ... PX pipelined for batch sets; invalidation and cleanup
 * walk the keys with SCAN MATCH <glob> COUNT 1000 (never KEYS, which blocks the server) and
 * remove with UNLINK in batches (freed in a background thread on the server).
 *
 * Shared counters: each process adds its hit/miss/... increments to the hash
 * "<prefix>:cache-stats" (HINCRBY, pipelined) about once a second, so `betpipe cache stats`
 * reports the whole fleet.
 *
 * Single-flight across daemons: SET <prefix>:cache-lock:<type>:<part> <token> NX PX lock_ms;
 * released by a compare-and-delete script so a daemon never frees a lock that expired and was
 * taken by another.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cache_backend.h"
#include "log.h"
#include "redis_conn.h"
#include "util.h"

#define REDIS_POOL_SIZE    16
#define REDIS_SCAN_COUNT   "1000"
#define REDIS_UNLINK_BATCH 500
/* A cache must fail fast: a slow answer is worse than a miss. */
#define REDIS_CACHE_CONNECT_TIMEOUT_MS 1000
#define REDIS_CACHE_COMMAND_TIMEOUT_MS 1000

static const char unlock_source[] = "if redis.call('get', KEYS[1]) == ARGV[1] then\n"
                                    "  return redis.call('del', KEYS[1])\n"
                                    "end\n"
                                    "return 0\n";

typedef struct redis_backend {
    cache_backend base;
    char *url;
    char *type_glob[CACHE_TYPE_COUNT]; /* "<escaped prefix>:cache:<type>:*" */
    char *stats_key;                   /* "<prefix>:cache-stats" */
    redis_conn_options opts;
    redis_script unlock_script;
    const redis_script *scripts[1];

    pthread_mutex_t lock;
    pthread_cond_t cond;
    redis_conn *conns[REDIS_POOL_SIZE]; /* NULL until first needed */
    uint64_t conn_epoch[REDIS_POOL_SIZE];
    int free_slots[REDIS_POOL_SIZE]; /* a stack: the most recently used slot is reused first */
    int nfree;
    /* Bumped whenever a connection finds the server gone. The other pooled connections are
     * then dropped before their next use: after a restart their sockets are dead too, and
     * finding that out one failed command at a time would look like a string of new outages. */
    _Atomic uint64_t epoch;
} redis_backend;

/* ---- the connection pool ------------------------------------------------------------------- */

/* Take a connection slot (blocks while all are busy) and make sure it has a redis_conn. */
static int pool_take(redis_backend *r, int *out_slot, bp_error *err)
{
    int slot, rc = BP_OK;
    pthread_mutex_lock(&r->lock);
    while (r->nfree == 0) {
        pthread_cond_wait(&r->cond, &r->lock);
    }
    slot = r->free_slots[--r->nfree];
    pthread_mutex_unlock(&r->lock);
    if (!r->conns[slot]) {
        /* Only the slot's holder touches conns[slot], so no lock is needed here. */
        rc = redis_conn_open(r->url, &r->opts, &r->conns[slot], err);
        if (rc != BP_OK) {
            pthread_mutex_lock(&r->lock);
            r->free_slots[r->nfree++] = slot;
            pthread_cond_signal(&r->cond);
            pthread_mutex_unlock(&r->lock);
            return rc;
        }
        redis_conn_preload(r->conns[slot], r->scripts, 1, NULL);
        r->conn_epoch[slot] = atomic_load(&r->epoch);
    } else if (r->conn_epoch[slot] != atomic_load(&r->epoch)) {
        redis_conn_drop(r->conns[slot]);
        r->conn_epoch[slot] = atomic_load(&r->epoch);
    } else if (!redis_conn_is_up(r->conns[slot])) {
        /* cache.c already spaces out the probes of a down backend; a connection's own reconnect
         * back-off would make this slot fail after another one found the server back, which
         * reads as a second outage. Let it try now. */
        redis_conn_drop(r->conns[slot]);
    }
    *out_slot = slot;
    return BP_OK;
}

/* Give a slot back. `rc` is the outcome of what it was used for. */
static void pool_give(redis_backend *r, int slot, int rc)
{
    /* A pipeline abandoned half way would poison the next user: drop it. */
    if (r->conns[slot] && redis_conn_pending(r->conns[slot]) > 0) {
        redis_conn_drop(r->conns[slot]);
    }
    if (rc == BP_E_UNAVAILABLE) {
        r->conn_epoch[slot] = atomic_fetch_add(&r->epoch, 1) + 1;
    }
    pthread_mutex_lock(&r->lock);
    r->free_slots[r->nfree++] = slot;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* Free n replies. */
static void free_replies(redisReply **rs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (rs[i]) {
            freeReplyObject(rs[i]);
            rs[i] = NULL;
        }
    }
}

static unsigned char *copy_bytes(const char *s, size_t n)
{
    unsigned char *p = malloc(n ? n : 1);
    if (p && n) {
        memcpy(p, s, n);
    }
    return p;
}

static int64_t px_of(int64_t expire_at_ms)
{
    int64_t px = expire_at_ms - util_now_ms();
    return px > 0 ? px : 1;
}

/* ---- entries ------------------------------------------------------------------------------- */

static int rb_get(cache_backend *b, const char *key, size_t key_len, unsigned char **out_blob,
                  size_t *out_len, bp_error *err)
{
    redis_backend *r = (redis_backend *)b;
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, key_len};
    redisReply *rep = NULL;
    int slot, rc = pool_take(r, &slot, err);
    if (rc != BP_OK) {
        return rc;
    }
    rc = redis_conn_command_argv(r->conns[slot], 2, argv, lens, &rep, err);
    pool_give(r, slot, rc);
    if (rc != BP_OK) {
        return rc;
    }
    if (rep->type == REDIS_REPLY_NIL) {
        rc = BP_E_NOTFOUND;
    } else if (rep->type != REDIS_REPLY_STRING) {
        rc = bp_err(err, BP_E_CORRUPT, "cache redis: GET %s: not a string", key);
    } else if (!(*out_blob = copy_bytes(rep->str, rep->len))) {
        rc = bp_err(err, BP_E_NOMEM, "cache redis: out of memory");
    } else {
        *out_len = rep->len;
    }
    freeReplyObject(rep);
    return rc;
}

static int rb_mget(cache_backend *b, cache_item *items, size_t n, bp_error *err)
{
    redis_backend *r = (redis_backend *)b;
    const char **argv = malloc((n + 1) * sizeof *argv);
    size_t *lens = malloc((n + 1) * sizeof *lens);
    redisReply *rep = NULL;
    int slot = -1, rc;
    for (size_t i = 0; i < n; i++) {
        items[i].out_blob = NULL;
        items[i].out_len = 0;
    }
    if (!argv || !lens) {
        rc = bp_err(err, BP_E_NOMEM, "cache redis: out of memory");
        goto fail;
    }
    argv[0] = "MGET";
    lens[0] = 4;
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = items[i].key;
        lens[i + 1] = items[i].key_len;
    }
    rc = pool_take(r, &slot, err);
    if (rc != BP_OK) {
        goto fail;
    }
    rc = redis_conn_command_argv(r->conns[slot], (int)(n + 1), argv, lens, &rep, err);
    pool_give(r, slot, rc);
    if (rc != BP_OK) {
        goto fail;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
        rc = bp_err(err, BP_E_CORRUPT, "cache redis: MGET: unexpected reply");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *e = rep->element[i];
        if (e->type == REDIS_REPLY_STRING) {
            items[i].out_blob = copy_bytes(e->str, e->len);
            items[i].out_len = items[i].out_blob ? e->len : 0;
        }
    }
fail:
    if (rep) {
        freeReplyObject(rep);
    }
    free(argv);
    free(lens);
    return rc;
}

/* Queue "SET key blob PX ms" on conn. */
static int append_set(redis_conn *conn, const cache_item *it, bp_error *err)
{
    char px[24];
    const char *argv[5] = {"SET", it->key, (const char *)it->blob, "PX", px};
    size_t lens[5] = {3, it->key_len, it->blob_len, 2, 0};
    lens[4] = (size_t)snprintf(px, sizeof px, "%lld", (long long)px_of(it->expire_at_ms));
    return redis_conn_append_argv(conn, 5, argv, lens, err);
}

static int rb_set(cache_backend *b, const cache_item *it, bp_error *err)
{
    redis_backend *r = (redis_backend *)b;
    char px[24];
    const char *argv[5] = {"SET", it->key, (const char *)it->blob, "PX", px};
    size_t lens[5] = {3, it->key_len, it->blob_len, 2, 0};
    int slot, rc = pool_take(r, &slot, err);
    if (rc != BP_OK) {
        return rc;
    }
    lens[4] = (size_t)snprintf(px, sizeof px, "%lld", (long long)px_of(it->expire_at_ms));
    rc = redis_conn_command_argv(r->conns[slot], 5, argv, lens, NULL, err);
    pool_give(r, slot, rc);
    return rc;
}

static int rb_mset(cache_backend *b, const cache_item *items, size_t n, bp_error *err)
{
    redis_backend *r = (redis_backend *)b;
    redisReply **reps = calloc(n ? n : 1, sizeof *reps);
    int slot, rc;
    if (!reps) {
        return bp_err(err, BP_E_NOMEM, "cache redis: out of memory");
    }
    rc = pool_take(r, &slot, err);
    if (rc != BP_OK) {
        free(reps);
        return rc;
    }
    for (size_t i = 0; i < n && rc == BP_OK; i++) {
        rc = append_set(r->conns[slot], &items[i], err);
    }
    if (rc == BP_OK) {
        rc = redis_conn_read_replies(r->conns[slot], reps, n, err);
    }
    pool_give(r, slot, rc);
    for (size_t i = 0; i < n && rc == BP_OK; i++) {
        rc = redis_reply_status(reps[i], "cache redis: SET", err);
    }
    free_replies(reps, n);
    free(reps);
    return rc;
}

static int rb_del(cache_backend *b, const char *key, size_t key_len, int *out_removed,
                  bp_error *err)
{
    redis_backend *r = (redis_backend *)b;
    const char *argv[2] = {"UNLINK", key};
    size_t lens[2] = {6, key_len};
    redisReply *rep = NULL;
    int slot, rc = pool_take(r, &slot, err);
    if (rc != BP_OK) {
        return rc;
    }
    rc = redis_conn_command_argv(r->conns[slot], 2, argv, lens, &rep, err);
    pool_give(r, slot, rc);
    if (rc == BP_OK) {
        if (out_removed) {
            *out_removed = rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
        }
        freeReplyObject(rep);
    }
    return rc;
}

/* ---- walking keys with SCAN ---------------------------------------------------------------- */

/* Called with each SCAN batch: keys[i] are borrowed from the reply. */
typedef int (*scan_fn)(redis_backend *r, redis_conn *conn, redisReply **keys, size_t n, void *ud,
                       bp_error *err);

/* SCAN the whole keyspace with MATCH glob, handing each non-empty batch to fn. The connection
 * is held for the whole walk, so fn may use it. */
static int scan_keys(redis_backend *r, const char *glob, scan_fn fn, void *ud, bp_error *err)
{
    char cursor[32] = "0";
    int slot, rc = pool_take(r, &slot, err);
    if (rc != BP_OK) {
        return rc;
    }
    do {
        const char *argv[6] = {"SCAN", cursor, "MATCH", glob, "COUNT", REDIS_SCAN_COUNT};
        redisReply *rep = NULL, *next, *keys;
        rc = redis_conn_command_argv(r->conns[slot], 6, argv, NULL, &rep, err);
        if (rc != BP_OK) {
            break;
        }
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            rep->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(rep);
            rc = bp_err(err, BP_E_CORRUPT, "cache redis: SCAN: unexpected reply");
            break;
        }
        next = rep->element[0];
        keys = rep->element[1];
        util_strlcpy(cursor, next->str, sizeof cursor);
        if (keys->elements > 0) {
            rc = fn(r, r->conns[slot], keys->element, keys->elements, ud, err);
        }
        freeReplyObject(rep);
    } while (rc == BP_OK && strcmp(cursor, "0") != 0);
    pool_give(r, slot, rc);
    return rc;
}

/* UNLINK keys[0..n) in batches; add the number removed. */
static int unlink_keys(redis_conn *conn, const char *const *keys, const size_t *key_lens, size_t n,
                       uint64_t *out_removed, bp_error *err)
{
    const char *argv[REDIS_UNLINK_BATCH + 1];
    size_t lens[REDIS_UNLINK_BATCH + 1];
    for (size_t off = 0; off < n; off += REDIS_UNLINK_BATCH) {
        size_t m = n - off < REDIS_UNLINK_BATCH ? n - off : REDIS_UNLINK_BATCH;
        redisReply *rep = NULL;
        int rc;
        argv[0] = "UNLINK";
        lens[0] = 6;
        for (size_t i = 0; i < m; i++) {
            argv[i + 1] = keys[off + i];
            lens[i + 1] = key_lens[off + i];
        }
        rc = redis_conn_command_argv(conn, (int)(m + 1), argv, lens, &rep, err);
        if (rc != BP_OK) {
            return rc;
        }
        if (rep->type == REDIS_REPLY_INTEGER && rep->integer > 0) {
            *out_removed += (uint64_t)rep->integer;
        }
        freeReplyObject(rep);
    }
    return BP_OK;
}

static int scan_unlink_all(redis_backend *r, redis_conn *conn, redisReply **keys, size_t n,
                           void *ud, bp_error *err)
{
    const char **names = malloc(n * sizeof *names);
    size_t *lens = malloc(n * sizeof *lens);
    int rc;
    (void)r;
    if (!names || !lens) {
        free(names);
        free(lens);
        return bp_err(err, BP_E_NOMEM, "cache redis: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        names[i] = keys[i]->str;
        lens[i] = keys[i]->len;
    }
    rc = unlink_keys(conn, names, lens, n, ud, err);
    free(names);
    free(lens);
    return rc;
}

static int rb_invalidate(cache_backend *b, cache_type type, const char *key_glob,
                         uint64_t *out_removed, bp_error *err)
{
    (void)type; /* the glob already names the type */
    return scan_keys((redis_backend *)b, key_glob, scan_unlink_all, out_removed, err);
}

/* Per batch: pipeline GETRANGE 0..header and STRLEN for every key, then UNLINK the ones whose
 * header says they are past their stale limit (Redis normally drops them itself through PX;
 * this catches clock skew between daemons and keys written without an expiry). */
typedef struct cleanup_ctx {
    int64_t now_ms;
    uint64_t removed;
    uint64_t bytes;
} cleanup_ctx;

static int scan_cleanup(redis_backend *r, redis_conn *conn, redisReply **keys, size_t n, void *ud,
                        bp_error *err)
{
    cleanup_ctx *cx = ud;
    redisReply **reps = calloc(2 * n, sizeof *reps);
    const char **dead = malloc(n * sizeof *dead);
    size_t *dead_lens = malloc(n * sizeof *dead_lens);
    size_t ndead = 0;
    uint64_t bytes = 0;
    int rc = BP_OK;
    (void)r;
    if (!reps || !dead || !dead_lens) {
        rc = bp_err(err, BP_E_NOMEM, "cache redis: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n && rc == BP_OK; i++) {
        const char *a1[4] = {"GETRANGE", keys[i]->str, "0", "16"};
        size_t l1[4] = {8, keys[i]->len, 1, 2};
        const char *a2[2] = {"STRLEN", keys[i]->str};
        size_t l2[2] = {6, keys[i]->len};
        rc = redis_conn_append_argv(conn, 4, a1, l1, err);
        if (rc == BP_OK) {
            rc = redis_conn_append_argv(conn, 2, a2, l2, err);
        }
    }
    if (rc != BP_OK) {
        redis_conn_drop(conn);
        goto out;
    }
    rc = redis_conn_read_replies(conn, reps, 2 * n, err);
    if (rc != BP_OK) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *h = reps[2 * i], *len = reps[2 * i + 1];
        int64_t stale_until = 0;
        if (h->type != REDIS_REPLY_STRING || len->type != REDIS_REPLY_INTEGER) {
            continue; /* vanished meanwhile, or not ours */
        }
        if (h->len >= CACHE_BLOB_HEADER) {
            for (int k = 9; k < 17; k++) {
                stale_until = (int64_t)(((uint64_t)stale_until << 8) | (unsigned char)h->str[k]);
            }
        }
        if (h->len < CACHE_BLOB_HEADER || stale_until <= cx->now_ms) {
            dead[ndead] = keys[i]->str;
            dead_lens[ndead++] = keys[i]->len;
            bytes += (uint64_t)len->integer + keys[i]->len;
        }
    }
    if (ndead) {
        uint64_t removed = 0;
        rc = unlink_keys(conn, dead, dead_lens, ndead, &removed, err);
        cx->removed += removed;
        cx->bytes += bytes;
    }
out:
    if (reps) {
        free_replies(reps, 2 * n);
    }
    free(reps);
    free(dead);
    free(dead_lens);
    return rc;
}

static int rb_cleanup(cache_backend *b, cache_type type, int64_t now_ms, uint64_t *out_removed,
                      uint64_t *out_bytes, bp_error *err)
{
    redis_backend *r = (redis_backend *)b;
    cleanup_ctx cx = {now_ms, 0, 0};
    int rc = scan_keys(r, r->type_glob[type], scan_cleanup, &cx, err);
    *out_removed += cx.removed;
    *out_bytes += cx.bytes;
    return rc;
}

/* Per batch: pipeline STRLEN to add up keys and bytes. */
static int scan_usage(redis_backend *r, redis_conn *conn, redisReply **keys, size_t n, void *ud,
                      bp_error *err)
{
    cache_usage *u = ud;
    redisReply **reps = calloc(n, sizeof *reps);
    int rc = BP_OK;
    (void)r;
    if (!reps) {
        return bp_err(err, BP_E_NOMEM, "cache redis: out of memory");
    }
    for (size_t i = 0; i < n && rc == BP_OK; i++) {
        const char *a[2] = {"STRLEN", keys[i]->str};
        size_t l[2] = {6, keys[i]->len};
        rc = redis_conn_append_argv(conn, 2, a, l, err);
    }
    if (rc == BP_OK) {
        rc = redis_conn_read_replies(conn, reps, n, err);
    } else {
        redis_conn_drop(conn);
    }
    for (size_t i = 0; i < n && rc == BP_OK; i++) {
        if (reps[i]->type == REDIS_REPLY_INTEGER && reps[i]->integer > 0) {
            u->keys++;
            u->bytes += (uint64_t)reps[i]->integer + keys[i]->len;
        }
    }
    free_replies(reps, n);
    free(reps);
    return rc;
}

static int rb_usage(cache_backend *b, cache_usage *out, bp_error *err)
{
    redis_backend *r = (redis_backend *)b;
    memset(out, 0, sizeof(cache_usage) * CACHE_TYPE_COUNT);
    for (int t = 0; t < CACHE_TYPE_COUNT; t++) {
        int rc = scan_keys(r, r->type_glob[t], scan_usage, &out[t], err);
        if (rc != BP_OK) {
            return rc;
        }
    }
    return BP_OK;
}

/* ---- locks and shared counters ------------------------------------------------------------- */

static int rb_lock(cache_backend *b, const char *lock_key, const char *token, int64_t ttl_ms,
                   int *out_acquired, bp_error *err)
{
    redis_backend *r = (redis_backend *)b;
    char px[24];
    const char *argv[6] = {"SET", lock_key, token, "NX", "PX", px};
    redisReply *rep = NULL;
    int slot, rc = pool_take(r, &slot, err);
    if (rc != BP_OK) {
        return rc;
    }
    snprintf(px, sizeof px, "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 1));
    rc = redis_conn_command_argv(r->conns[slot], 6, argv, NULL, &rep, err);
    pool_give(r, slot, rc);
    if (rc == BP_OK) {
        *out_acquired = rep->type == REDIS_REPLY_STATUS;
        freeReplyObject(rep);
    }
    return rc;
}

static int rb_unlock(cache_backend *b, const char *lock_key, const char *token, bp_error *err)
{
    redis_backend *r = (redis_backend *)b;
    const char *argv[2] = {lock_key, token};
    int slot, rc = pool_take(r, &slot, err);
    if (rc != BP_OK) {
        return rc;
    }
    rc = redis_conn_eval(r->conns[slot], &r->unlock_script, 1, 2, argv, NULL, NULL, err);
    pool_give(r, slot, rc);
    return rc;
}

static int rb_lock_held(cache_backend *b, const char *lock_key, int *out_held, bp_error *err)
{
    redis_backend *r = (redis_backend *)b;
    const char *argv[2] = {"EXISTS", lock_key};
    redisReply *rep = NULL;
    int slot, rc = pool_take(r, &slot, err);
    if (rc != BP_OK) {
        return rc;
    }
    rc = redis_conn_command_argv(r->conns[slot], 2, argv, NULL, &rep, err);
    pool_give(r, slot, rc);
    if (rc == BP_OK) {
        *out_held = rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
        freeReplyObject(rep);
    }
    return rc;
}

static int rb_counters(cache_backend *b, const uint64_t *deltas, uint64_t *out_totals,
                       bp_error *err)
{
    redis_backend *r = (redis_backend *)b;
    redisReply *reps[CACHE_TYPE_COUNT * CACHE_COUNTER_COUNT + 1] = {0};
    size_t queued = 0;
    int slot, rc = pool_take(r, &slot, err);
    if (rc != BP_OK) {
        return rc;
    }
    for (int t = 0; t < CACHE_TYPE_COUNT && rc == BP_OK; t++) {
        for (int k = 0; k < CACHE_COUNTER_COUNT && rc == BP_OK; k++) {
            uint64_t d = deltas[t * CACHE_COUNTER_COUNT + k];
            char field[64], num[24];
            const char *argv[4] = {"HINCRBY", r->stats_key, field, num};
            if (!d) {
                continue;
            }
            snprintf(field, sizeof field, "%s.%s", cache_type_name((cache_type)t),
                     cache_counter_names[k]);
            snprintf(num, sizeof num, "%llu", (unsigned long long)d);
            rc = redis_conn_append_argv(r->conns[slot], 4, argv, NULL, err);
            queued += rc == BP_OK;
        }
    }
    if (rc == BP_OK && out_totals) {
        const char *argv[2] = {"HGETALL", r->stats_key};
        rc = redis_conn_append_argv(r->conns[slot], 2, argv, NULL, err);
        queued += rc == BP_OK;
    }
    if (rc == BP_OK) {
        rc = redis_conn_read_replies(r->conns[slot], reps, queued, err);
    }
    pool_give(r, slot, rc);
    for (size_t i = 0; i < queued && rc == BP_OK; i++) {
        rc = redis_reply_status(reps[i], "cache redis: counters", err);
    }
    if (rc == BP_OK && out_totals) {
        redisReply *all = reps[queued - 1];
        memset(out_totals, 0, sizeof(uint64_t) * CACHE_TYPE_COUNT * CACHE_COUNTER_COUNT);
        for (size_t i = 0; all->type == REDIS_REPLY_ARRAY && i + 1 < all->elements; i += 2) {
            const char *f = all->element[i]->str, *dot = f ? strchr(f, '.') : NULL;
            int64_t v = 0;
            if (!dot || util_parse_int64(all->element[i + 1]->str, 0, INT64_MAX, "counter", &v,
                                         NULL) != BP_OK) {
                continue;
            }
            for (int t = 0; t < CACHE_TYPE_COUNT; t++) {
                if (strlen(cache_type_name((cache_type)t)) != (size_t)(dot - f) ||
                    strncmp(f, cache_type_name((cache_type)t), (size_t)(dot - f)) != 0) {
                    continue;
                }
                for (int k = 0; k < CACHE_COUNTER_COUNT; k++) {
                    if (strcmp(dot + 1, cache_counter_names[k]) == 0) {
                        out_totals[t * CACHE_COUNTER_COUNT + k] = (uint64_t)v;
                    }
                }
            }
        }
    }
    free_replies(reps, queued);
    return rc;
}

/* ---- what the server counts: INFO ---------------------------------------------------------- */

/* The value of "name:value" in an INFO text, as a new string (NULL when absent). */
static char *info_field(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            size_t len = strcspn(v, "\r\n");
            char *out = malloc(len + 1);
            if (out) {
                memcpy(out, v, len);
                out[len] = '\0';
            }
            return out;
        }
    }
    return NULL;
}

/* Add INFO field `name` to `o` under the same name: as an integer when it reads as one. */
static void info_put(json_t *o, const char *text, const char *name)
{
    char *v = info_field(text, name);
    int64_t n = 0;
    if (!v) {
        return;
    }
    if (util_parse_int64(v, 0, INT64_MAX, name, &n, NULL) == BP_OK) {
        json_object_set_new(o, name, json_integer((json_int_t)n));
    } else {
        json_object_set_new(o, name, json_string(v));
    }
    free(v);
}

/* Redis evicts (maxmemory) and expires (PX) keys by itself and only counts them for the whole
 * server; a cache sharing the server with other data cannot tell its own apart, so these are
 * reported as what they are: server-wide. Two INFO sections, not INFO everything: that one is
 * large and walks every client. */
static int rb_server_stats(cache_backend *b, json_t **out_server, bp_error *err)
{
    redis_backend *r = (redis_backend *)b;
    static const char *const sections[2] = {"stats", "memory"};
    static const char *const fields[2][3] = {{"evicted_keys", "expired_keys", NULL},
                                             {"maxmemory_policy", "maxmemory", "used_memory"}};
    json_t *o = json_object();
    int slot, rc;
    if (!o) {
        return bp_err(err, BP_E_NOMEM, "cache redis: out of memory");
    }
    rc = pool_take(r, &slot, err);
    if (rc != BP_OK) {
        json_decref(o);
        return rc;
    }
    for (int s = 0; s < 2 && rc == BP_OK; s++) {
        const char *argv[2] = {"INFO", sections[s]};
        redisReply *rep = NULL;
        rc = redis_conn_command_argv(r->conns[slot], 2, argv, NULL, &rep, err);
        if (rc == BP_OK && rep->type == REDIS_REPLY_STRING) {
            for (int f = 0; f < 3 && fields[s][f]; f++) {
                info_put(o, rep->str, fields[s][f]);
            }
        } else if (rc == BP_OK) {
            rc = bp_err(err, BP_E_CORRUPT, "cache redis: INFO %s: not a string", sections[s]);
        }
        if (rep) {
            freeReplyObject(rep);
        }
    }
    pool_give(r, slot, rc);
    if (rc != BP_OK) {
        json_decref(o);
        return rc;
    }
    *out_server = o;
    return BP_OK;
}

static void rb_close(cache_backend *b)
{
    redis_backend *r = (redis_backend *)b;
    if (!r) {
        return;
    }
    for (int i = 0; i < REDIS_POOL_SIZE; i++) {
        redis_conn_close(r->conns[i]);
    }
    for (int t = 0; t < CACHE_TYPE_COUNT; t++) {
        free(r->type_glob[t]);
    }
    free(r->stats_key);
    free(r->url);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}

static const cache_backend_ops redis_ops = {
    .name = "redis",
    .get = rb_get,
    .get_value = NULL,
    .mget = rb_mget,
    .set = rb_set,
    .mset = rb_mset,
    .del = rb_del,
    .invalidate = rb_invalidate,
    .cleanup = rb_cleanup,
    .usage = rb_usage,
    .lock = rb_lock,
    .unlock = rb_unlock,
    .lock_held = rb_lock_held,
    .counters = rb_counters,
    .close = rb_close,
    .server_stats = rb_server_stats,
};

/* Escape Redis glob characters in a literal. */
static char *glob_literal(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 1), *p = out;
    if (!out) {
        return NULL;
    }
    for (; *s; s++) {
        if (strchr("*?[]\\", *s)) {
            *p++ = '\\';
        }
        *p++ = *s;
    }
    *p = '\0';
    return out;
}

int cache_redis_open(const char *url, const char *prefix, cache_backend **out, bp_error *err)
{
    redis_backend *r = calloc(1, sizeof *r);
    char *esc = NULL;
    int slot, rc;
    if (!r) {
        return bp_err(err, BP_E_NOMEM, "cache redis: out of memory");
    }
    r->base.ops = &redis_ops;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    for (int i = 0; i < REDIS_POOL_SIZE; i++) {
        r->free_slots[i] = i;
    }
    r->nfree = REDIS_POOL_SIZE;
    redis_conn_options_default(&r->opts);
    r->opts.lazy = true;
    r->opts.connect_timeout_ms = REDIS_CACHE_CONNECT_TIMEOUT_MS;
    r->opts.command_timeout_ms = REDIS_CACHE_COMMAND_TIMEOUT_MS;
    r->opts.client_name = "betpipe-cache";
    redis_script_init(&r->unlock_script, "cache-unlock", unlock_source);
    r->scripts[0] = &r->unlock_script;
    r->url = util_strdup(url);
    r->stats_key = util_asprintf("%s:cache-stats", prefix);
    esc = glob_literal(prefix);
    if (!r->url || !r->stats_key || !esc) {
        rc = bp_err(err, BP_E_NOMEM, "cache redis: out of memory");
        goto fail;
    }
    for (int t = 0; t < CACHE_TYPE_COUNT; t++) {
        r->type_glob[t] = util_asprintf("%s:cache:%s:*", esc, cache_type_name((cache_type)t));
        if (!r->type_glob[t]) {
            rc = bp_err(err, BP_E_NOMEM, "cache redis: out of memory");
            goto fail;
        }
    }
    /* Open the first connection now: a bad URL or bad credentials are configuration errors
     * worth failing start-up for; an unreachable server is not (lazy). */
    rc = pool_take(r, &slot, err);
    if (rc != BP_OK) {
        bp_err_prefix(err, "cache.url: ");
        goto fail;
    }
    pool_give(r, slot, rc);
    free(esc);
    *out = &r->base;
    return BP_OK;
fail:
    free(esc);
    rb_close(&r->base);
    return rc;
}
