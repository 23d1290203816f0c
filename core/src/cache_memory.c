/*
 * cache_memory.c - the embedded cache backend: an in-process hash table bounded by bytes.
 *
 * The table is split into CACHE_MEM_SHARDS shards, each with its own mutex, hash table and LRU
 * list, so threads working on different keys rarely meet. A key's shard comes from the high
 * bits of its 64-bit hash, its bucket from the low bits.
 *
 * The byte bound is enforced per shard: each shard may hold max_bytes / CACHE_MEM_SHARDS bytes,
 * so the sum can never pass max_bytes, whatever the threads do, and eviction never needs a
 * global lock. The price is that LRU is per shard (the least recently used entry *of the
 * shard* goes first) and that one entry may not exceed a shard's share; with a uniform hash the
 * difference from a global LRU is small. Every operation is O(1) expected: the hash chain finds
 * the entry, the doubly linked LRU list moves or unlinks it. The bucket array doubles when a
 * shard holds more entries than buckets (amortised O(1)).
 *
 * "bytes" counts what an entry costs: its key, its blob, the entry's bookkeeping and, for values
 * stored as plain JSON, an estimate of the decoded copy kept beside the blob. That copy is what
 * makes a hit cheap: parsing JSON text costs several times more than deep-copying a jansson
 * value, so get_value() copies the kept value under the shard lock (a few hundred ns for a
 * typical entry). The kept value never leaves the shard and is never modified, and no
 * reference to it is shared, so no reference count is ever touched by two threads.
 *
 * Expiry is lazy: a get that finds an entry past its expire_at drops it; cleanup() sweeps the
 * rest. Blobs are copied out under the lock, so callers never see memory a writer frees.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache_backend.h"
#include "util.h"

#define CACHE_MEM_SHARDS      16
#define CACHE_MEM_MIN_BUCKETS 64

typedef struct mem_entry {
    struct mem_entry *hnext;               /* hash chain */
    struct mem_entry *lru_prev, *lru_next; /* lru_prev towards most recent */
    uint64_t hash;
    int64_t fresh_until_ms;
    int64_t expire_at_ms;
    json_t *decoded; /* immutable copy of the value, or NULL (compressed values) */
    uint64_t cost;   /* what this entry counts for in `bytes` */
    uint32_t key_len;
    uint32_t blob_len;
    uint8_t type;
    char data[]; /* key bytes, then blob bytes */
} mem_entry;

typedef struct mem_shard {
    pthread_mutex_t lock;
    mem_entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    mem_entry *lru_head; /* most recently used */
    mem_entry *lru_tail; /* least recently used: evicted first */
    uint64_t bytes;
    uint64_t max_bytes;
    cache_usage usage[CACHE_TYPE_COUNT];
    /* keep shards on separate cache lines */
    char pad[64];
} mem_shard;

typedef struct mem_backend {
    cache_backend base;
    mem_shard shards[CACHE_MEM_SHARDS];
} mem_backend;

/* A shard is held for well under a microsecond (a lookup, an LRU move, a deep copy of a small
 * value), while a contended pthread mutex puts the waiter to sleep in the kernel and costs it
 * some tens of microseconds to be woken: with two threads on 16 shards that was the 99th
 * percentile of every get. So a waiter first spins briefly, retrying the lock, and sleeps only
 * when the holder is really busy (or was preempted). */
#define SHARD_SPINS 100

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void shard_lock(mem_shard *s)
{
    for (int i = 0; i < SHARD_SPINS; i++) {
        if (pthread_mutex_trylock(&s->lock) == 0) {
            return;
        }
        cpu_relax();
    }
    pthread_mutex_lock(&s->lock);
}

/* FNV-1a with a final avalanche (splitmix64) so both the high bits (shard) and low bits
 * (bucket) are well mixed. */
static uint64_t mem_hash(const char *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

/* An estimate of the heap a jansson value occupies (allocator overhead included roughly). */
static uint64_t json_cost(const json_t *v)
{
    uint64_t n = 0;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *item;
        n = 96 + 16 * json_object_size(v);
        json_object_foreach((json_t *)(uintptr_t)v, k, item)
        {
            n += 64 + strlen(k) + json_cost(item);
        }
        return n;
    }
    case JSON_ARRAY:
        n = 64 + 8 * json_array_size(v);
        for (size_t i = 0; i < json_array_size(v); i++) {
            n += json_cost(json_array_get(v, i));
        }
        return n;
    case JSON_STRING: return 48 + json_string_length(v);
    case JSON_INTEGER:
    case JSON_REAL: return 32;
    default: return 0; /* true, false, null are shared singletons */
    }
}

static void entry_free(mem_entry *e)
{
    json_decref(e->decoded);
    free(e);
}

static mem_shard *shard_for(mem_backend *m, uint64_t hash)
{
    return &m->shards[hash >> 60];
}

/* ---- list and table primitives (shard lock held) ------------------------------------------ */

static void lru_unlink(mem_shard *s, mem_entry *e)
{
    if (e->lru_prev) {
        e->lru_prev->lru_next = e->lru_next;
    } else {
        s->lru_head = e->lru_next;
    }
    if (e->lru_next) {
        e->lru_next->lru_prev = e->lru_prev;
    } else {
        s->lru_tail = e->lru_prev;
    }
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_head(mem_shard *s, mem_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = s->lru_head;
    if (s->lru_head) {
        s->lru_head->lru_prev = e;
    }
    s->lru_head = e;
    if (!s->lru_tail) {
        s->lru_tail = e;
    }
}

static mem_entry **bucket_slot(mem_shard *s, uint64_t hash, const char *key, size_t key_len)
{
    mem_entry **pp = &s->buckets[hash & (s->nbuckets - 1)];
    while (*pp) {
        mem_entry *e = *pp;
        if (e->hash == hash && e->key_len == key_len && memcmp(e->data, key, key_len) == 0) {
            return pp;
        }
        pp = &e->hnext;
    }
    return pp;
}

/* Remove the entry at *pp from the table, the LRU list and the accounting. Does not free. */
static void shard_remove(mem_shard *s, mem_entry **pp)
{
    mem_entry *e = *pp;
    uint64_t cost = e->cost;
    *pp = e->hnext;
    e->hnext = NULL;
    lru_unlink(s, e);
    s->count--;
    s->bytes -= cost;
    s->usage[e->type].keys--;
    s->usage[e->type].bytes -= cost;
}

/* Remove a known entry (found again through its hash chain). */
static void shard_remove_entry(mem_shard *s, mem_entry *e)
{
    mem_entry **pp = &s->buckets[e->hash & (s->nbuckets - 1)];
    while (*pp && *pp != e) {
        pp = &(*pp)->hnext;
    }
    if (*pp) {
        shard_remove(s, pp);
    }
}

/* Double the bucket array. A failed allocation just leaves longer chains. */
static void shard_grow(mem_shard *s)
{
    size_t n = s->nbuckets * 2;
    mem_entry **nb = calloc(n, sizeof *nb);
    if (!nb) {
        return;
    }
    for (size_t i = 0; i < s->nbuckets; i++) {
        mem_entry *e = s->buckets[i];
        while (e) {
            mem_entry *next = e->hnext;
            size_t j = e->hash & (n - 1);
            e->hnext = nb[j];
            nb[j] = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = nb;
    s->nbuckets = n;
}

/* Free a chain of entries linked through hnext (built by the callers outside the lock). */
static void free_chain(mem_entry *e)
{
    while (e) {
        mem_entry *next = e->hnext;
        entry_free(e);
        e = next;
    }
}

/* ---- operations ---------------------------------------------------------------------------- */

static int mem_get(cache_backend *b, const char *key, size_t key_len, unsigned char **out_blob,
                   size_t *out_len, bp_error *err)
{
    mem_backend *m = (mem_backend *)b;
    uint64_t hash = mem_hash(key, key_len);
    mem_shard *s = shard_for(m, hash);
    int64_t now = util_now_ms();
    mem_entry *dead = NULL;
    unsigned char *copy = NULL;
    size_t len = 0;
    int rc = BP_E_NOTFOUND;

    shard_lock(s);
    mem_entry **pp = bucket_slot(s, hash, key, key_len);
    mem_entry *e = *pp;
    if (e && e->expire_at_ms <= now) {
        s->usage[e->type].expired++;
        shard_remove(s, pp);
        dead = e;
    } else if (e) {
        copy = malloc(e->blob_len ? e->blob_len : 1);
        if (!copy) {
            rc = BP_E_NOMEM;
        } else {
            memcpy(copy, e->data + e->key_len, e->blob_len);
            len = e->blob_len;
            lru_unlink(s, e);
            lru_push_head(s, e);
            rc = BP_OK;
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (dead) {
        entry_free(dead);
    }
    if (rc == BP_E_NOMEM) {
        return bp_err(err, rc, "cache memory: out of memory copying an entry");
    }
    *out_blob = copy;
    *out_len = len;
    return rc;
}

static int mem_get_value(cache_backend *b, const char *key, size_t key_len, json_t **out_value,
                         int64_t *out_fresh_until, int64_t *out_stale_until, bp_error *err)
{
    mem_backend *m = (mem_backend *)b;
    uint64_t hash = mem_hash(key, key_len);
    mem_shard *s = shard_for(m, hash);
    int64_t now = util_now_ms();
    mem_entry *dead = NULL;
    int rc = BP_E_NOTFOUND;

    shard_lock(s);
    mem_entry **pp = bucket_slot(s, hash, key, key_len);
    mem_entry *e = *pp;
    if (e && e->expire_at_ms <= now) {
        s->usage[e->type].expired++;
        shard_remove(s, pp);
        dead = e;
    } else if (e && !e->decoded) {
        rc = BP_E_STATE;
    } else if (e) {
        rc = BP_OK;
        if (!(*out_value = json_deep_copy(e->decoded))) {
            rc = BP_E_NOMEM;
        }
        *out_fresh_until = e->fresh_until_ms;
        *out_stale_until = e->expire_at_ms;
        lru_unlink(s, e);
        lru_push_head(s, e);
    }
    pthread_mutex_unlock(&s->lock);
    if (dead) {
        entry_free(dead);
    }
    if (rc == BP_E_NOMEM) {
        return bp_err(err, rc, "cache memory: out of memory copying an entry");
    }
    return rc;
}

static int mem_mget(cache_backend *b, cache_item *items, size_t n, bp_error *err)
{
    for (size_t i = 0; i < n; i++) {
        int rc =
            mem_get(b, items[i].key, items[i].key_len, &items[i].out_blob, &items[i].out_len, err);
        if (rc == BP_E_NOTFOUND) {
            items[i].out_blob = NULL;
            items[i].out_len = 0;
        } else if (rc != BP_OK) {
            for (size_t j = 0; j < i; j++) {
                free(items[j].out_blob);
                items[j].out_blob = NULL;
            }
            return rc;
        }
    }
    return BP_OK;
}

static int mem_set(cache_backend *b, const cache_item *it, bp_error *err)
{
    mem_backend *m = (mem_backend *)b;
    uint64_t hash = mem_hash(it->key, it->key_len);
    mem_shard *s = shard_for(m, hash);
    json_t *decoded = it->value ? json_deep_copy(it->value) : NULL;
    uint64_t cost = (uint64_t)(sizeof(mem_entry) + it->key_len + it->blob_len) +
                    (decoded ? json_cost(decoded) : 0);
    mem_entry *e, *evicted = NULL, **pp;

    if (it->key_len > UINT32_MAX || it->blob_len > UINT32_MAX || cost > s->max_bytes) {
        json_decref(decoded);
        return bp_err(err, BP_E_LIMIT,
                      "cache memory: an entry of %zu bytes (%llu with bookkeeping) does not fit "
                      "the bound of %llu bytes per shard (max_bytes / %d); raise cache.max_bytes",
                      it->key_len + it->blob_len, (unsigned long long)cost,
                      (unsigned long long)s->max_bytes, CACHE_MEM_SHARDS);
    }
    e = malloc(sizeof *e + it->key_len + it->blob_len);
    if (!e) {
        json_decref(decoded);
        return bp_err(err, BP_E_NOMEM, "cache memory: out of memory storing an entry");
    }
    e->hnext = e->lru_prev = e->lru_next = NULL;
    e->hash = hash;
    e->fresh_until_ms = it->fresh_until_ms;
    e->expire_at_ms = it->expire_at_ms;
    e->decoded = decoded;
    e->cost = cost;
    e->key_len = (uint32_t)it->key_len;
    e->blob_len = (uint32_t)it->blob_len;
    e->type = (uint8_t)it->type;
    memcpy(e->data, it->key, it->key_len);
    memcpy(e->data + it->key_len, it->blob, it->blob_len);

    shard_lock(s);
    pp = bucket_slot(s, hash, it->key, it->key_len);
    if (*pp) {
        mem_entry *old = *pp;
        shard_remove(s, pp);
        old->hnext = evicted;
        evicted = old;
    }
    /* Make room: the least recently used entries of this shard go first. */
    while (s->bytes + cost > s->max_bytes && s->lru_tail) {
        mem_entry *victim = s->lru_tail;
        s->usage[victim->type].evictions++;
        shard_remove_entry(s, victim);
        victim->hnext = evicted;
        evicted = victim;
    }
    pp = bucket_slot(s, hash, it->key, it->key_len);
    *pp = e;
    lru_push_head(s, e);
    s->count++;
    s->bytes += cost;
    s->usage[e->type].keys++;
    s->usage[e->type].bytes += cost;
    if (s->count > s->nbuckets) {
        shard_grow(s);
    }
    pthread_mutex_unlock(&s->lock);
    free_chain(evicted);
    return BP_OK;
}

static int mem_mset(cache_backend *b, const cache_item *items, size_t n, bp_error *err)
{
    for (size_t i = 0; i < n; i++) {
        int rc = mem_set(b, &items[i], err);
        if (rc != BP_OK) {
            return rc;
        }
    }
    return BP_OK;
}

static int mem_del(cache_backend *b, const char *key, size_t key_len, int *out_removed,
                   bp_error *err)
{
    mem_backend *m = (mem_backend *)b;
    uint64_t hash = mem_hash(key, key_len);
    mem_shard *s = shard_for(m, hash);
    mem_entry *dead = NULL;
    (void)err;

    shard_lock(s);
    mem_entry **pp = bucket_slot(s, hash, key, key_len);
    if (*pp) {
        dead = *pp;
        shard_remove(s, pp);
    }
    pthread_mutex_unlock(&s->lock);
    if (out_removed) {
        *out_removed = dead != NULL;
    }
    if (dead) {
        entry_free(dead);
    }
    return BP_OK;
}

/* Walk one shard's LRU list and remove the entries `pred` accepts. */
typedef int (*mem_pred)(const mem_entry *e, const void *arg);

static void shard_sweep(mem_shard *s, cache_type type, mem_pred pred, const void *arg,
                        int count_as_expired, uint64_t *out_removed, uint64_t *out_bytes)
{
    mem_entry *dead = NULL;
    shard_lock(s);
    mem_entry *e = s->lru_head;
    while (e) {
        mem_entry *next = e->lru_next;
        if (e->type == (uint8_t)type && pred(e, arg)) {
            uint64_t cost = e->cost;
            if (count_as_expired) {
                s->usage[e->type].expired++;
            }
            shard_remove_entry(s, e);
            e->hnext = dead;
            dead = e;
            *out_removed += 1;
            if (out_bytes) {
                *out_bytes += cost;
            }
        }
        e = next;
    }
    pthread_mutex_unlock(&s->lock);
    free_chain(dead);
}

static int pred_glob(const mem_entry *e, const void *arg)
{
    return cache_glob_match((const char *)arg, e->data, e->key_len);
}

static int pred_expired(const mem_entry *e, const void *arg)
{
    return e->expire_at_ms <= *(const int64_t *)arg;
}

static int mem_invalidate(cache_backend *b, cache_type type, const char *key_glob,
                          uint64_t *out_removed, bp_error *err)
{
    mem_backend *m = (mem_backend *)b;
    (void)err;
    for (int i = 0; i < CACHE_MEM_SHARDS; i++) {
        shard_sweep(&m->shards[i], type, pred_glob, key_glob, 0, out_removed, NULL);
    }
    return BP_OK;
}

static int mem_cleanup(cache_backend *b, cache_type type, int64_t now_ms, uint64_t *out_removed,
                       uint64_t *out_bytes, bp_error *err)
{
    mem_backend *m = (mem_backend *)b;
    (void)err;
    for (int i = 0; i < CACHE_MEM_SHARDS; i++) {
        shard_sweep(&m->shards[i], type, pred_expired, &now_ms, 1, out_removed, out_bytes);
    }
    return BP_OK;
}

static int mem_usage(cache_backend *b, cache_usage *out, bp_error *err)
{
    mem_backend *m = (mem_backend *)b;
    (void)err;
    memset(out, 0, sizeof(cache_usage) * CACHE_TYPE_COUNT);
    for (int i = 0; i < CACHE_MEM_SHARDS; i++) {
        mem_shard *s = &m->shards[i];
        shard_lock(s);
        for (int t = 0; t < CACHE_TYPE_COUNT; t++) {
            out[t].keys += s->usage[t].keys;
            out[t].bytes += s->usage[t].bytes;
            out[t].evictions += s->usage[t].evictions;
            out[t].expired += s->usage[t].expired;
        }
        pthread_mutex_unlock(&s->lock);
    }
    return BP_OK;
}

static void mem_close(cache_backend *b)
{
    mem_backend *m = (mem_backend *)b;
    if (!m) {
        return;
    }
    for (int i = 0; i < CACHE_MEM_SHARDS; i++) {
        mem_shard *s = &m->shards[i];
        mem_entry *e = s->lru_head;
        while (e) {
            mem_entry *next = e->lru_next;
            entry_free(e);
            e = next;
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(m);
}

static const cache_backend_ops mem_ops = {
    .name = "memory",
    .get = mem_get,
    .get_value = mem_get_value,
    .mget = mem_mget,
    .set = mem_set,
    .mset = mem_mset,
    .del = mem_del,
    .invalidate = mem_invalidate,
    .cleanup = mem_cleanup,
    .usage = mem_usage,
    .lock = NULL,
    .unlock = NULL,
    .lock_held = NULL,
    .counters = NULL,
    .close = mem_close,
    .server_stats = NULL,
};

int cache_memory_open(uint64_t max_bytes, cache_backend **out, bp_error *err)
{
    mem_backend *m;
    int i;
    if (max_bytes < CACHE_MEM_SHARDS * 1024ULL) {
        return bp_err(err, BP_E_CONFIG, "cache.max_bytes: %llu is too small (at least %d)",
                      (unsigned long long)max_bytes, CACHE_MEM_SHARDS * 1024);
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        return bp_err(err, BP_E_NOMEM, "cache memory: out of memory");
    }
    m->base.ops = &mem_ops;
    for (i = 0; i < CACHE_MEM_SHARDS; i++) {
        mem_shard *s = &m->shards[i];
        s->max_bytes = max_bytes / CACHE_MEM_SHARDS;
        s->nbuckets = CACHE_MEM_MIN_BUCKETS;
        s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
        if (!s->buckets || pthread_mutex_init(&s->lock, NULL) != 0) {
            free(s->buckets);
            s->buckets = NULL;
            goto fail;
        }
    }
    *out = &m->base;
    return BP_OK;
fail:
    for (int j = 0; j < i; j++) {
        free(m->shards[j].buckets);
        pthread_mutex_destroy(&m->shards[j].lock);
    }
    free(m);
    return bp_err(err, BP_E_NOMEM, "cache memory: out of memory");
}
