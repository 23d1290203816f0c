/*
 * cache.c - the typed cache: types and TTLs, canonical keys, the entry encoding, cache-aside
 * with single-flight and stale fallback, counters, and riding out backend outages.
 *
 * The backends (cache_memory.c, cache_redis.c) only store blobs under keys; everything that
 * makes this a *cache* lives here. The story of one get_or_compute():
 *
 *   1. The type is parsed and the key built: "<prefix>:cache:<type>:" + the canonical filters.
 *   2. The backend returns the blob, whose header says when it goes stale and when it dies.
 *      Fresh: decode and return (a hit). Stale: keep it aside as a fallback. Either way, a miss.
 *   3. The caller joins the key's *flight*. The first caller (the leader) looks once more (a
 *      flight may have landed between steps 2 and 3), takes the cross-process lock on Redis (or
 *      waits for the daemon that holds it to publish the value), runs compute, stores the value
 *      and hands a copy to every caller that joined meanwhile. So N concurrent misses run the
 *      compute once.
 *   4. If compute fails, the stale value (if any) is served and counted; otherwise the failure
 *      is returned.
 *
 * Outages: the first BP_E_UNAVAILABLE from the backend logs one warning and marks the cache
 * down. While down, operations skip the backend (gets miss, sets are skipped and counted) except
 * for one probe after a back-off that doubles from 50 ms to 2 s; the first success logs one info
 * line and the cache is up again. Nothing the cache does makes its caller fail.
 */
#include "cache.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "cache_backend.h"
#include "log.h"
#include "util.h"

#define CACHE_DEFAULT_PREFIX             "betpipe"
#define CACHE_DEFAULT_STALE_FACTOR       6.0
#define CACHE_DEFAULT_MAX_BYTES          (64ULL * 1024 * 1024)
#define CACHE_DEFAULT_COMPRESS_THRESHOLD 1024
#define CACHE_DEFAULT_LOCK_MS            5000
#define CACHE_MAX_VALUE_BYTES            (512U * 1024 * 1024)
#define CACHE_FLIGHT_BUCKETS             64
#define CACHE_BACKOFF_MIN_MS             50
#define CACHE_BACKOFF_MAX_MS             2000
#define CACHE_COUNTER_FLUSH_NS           (1000LL * 1000 * 1000)

static const char *const type_names[CACHE_TYPE_COUNT] = {"odds", "stats", "predictions", "static"};
static const char *const type_env[CACHE_TYPE_COUNT] = {
    "BETPIPE_CACHE_TTL_ODDS", "BETPIPE_CACHE_TTL_STATS", "BETPIPE_CACHE_TTL_PREDICTIONS",
    "BETPIPE_CACHE_TTL_STATIC"};
/* The MaraBet TTLs (DESIGN section 5). */
static const int64_t type_default_ttl_ms[CACHE_TYPE_COUNT] = {300 * 1000LL, 1800 * 1000LL,
                                                              600 * 1000LL, 86400 * 1000LL};

const char *const cache_counter_names[CACHE_COUNTER_COUNT] = {"hits", "misses", "stale_serves",
                                                              "sets", "sets_skipped"};

/* One in-process single-flight: every concurrent caller of get_or_compute on `key`. */
typedef struct flight {
    struct flight *next;
    char *key;
    int refs; /* callers holding the flight (leader included); the last one frees it */
    int done;
    int rc;
    int stale;
    json_t *value; /* the published value; waiters take deep copies */
    bp_error err;
    pthread_cond_t cond;
} flight;

struct cache {
    cache_backend *backend;
    char *prefix;
    char *key_prefix;      /* "<prefix>:cache:" */
    char *lock_prefix;     /* "<prefix>:cache-lock:" */
    char *key_glob_prefix; /* key_prefix with glob characters escaped */
    char *url;
    int64_t ttl_ms[CACHE_TYPE_COUNT];
    double stale_factor;
    uint64_t max_bytes;
    size_t compress_threshold;
    int64_t lock_ms;

    /* counters of this process; `flushed` is the part already added to Redis's shared hash */
    _Atomic uint64_t ctr[CACHE_TYPE_COUNT][CACHE_COUNTER_COUNT];
    uint64_t flushed[CACHE_TYPE_COUNT][CACHE_COUNTER_COUNT];
    pthread_mutex_t flush_lock;
    _Atomic int64_t next_flush_ns;
    /* Redis: the thread that flushes them while the process is idle */
    pthread_t flusher;
    int flusher_started;
    int flusher_stop; /* under flusher_lock */
    pthread_mutex_t flusher_lock;
    pthread_cond_t flusher_cond;

    /* outage state */
    pthread_mutex_t health_lock;
    _Atomic int down;
    _Atomic int64_t retry_at_ns;
    int64_t backoff_ms;
    int64_t down_since_ns;
    char down_reason[BP_ERROR_MSG_MAX];

    /* single-flight table */
    pthread_mutex_t flight_lock;
    flight *flights[CACHE_FLIGHT_BUCKETS];
};

/* ============================================================================================
 * Types
 * ========================================================================================== */

const char *cache_type_name(cache_type t)
{
    return (t >= 0 && t < CACHE_TYPE_COUNT) ? type_names[t] : "?";
}

int cache_type_parse(const char *name, cache_type *out, bp_error *err)
{
    if (name) {
        for (int i = 0; i < CACHE_TYPE_COUNT; i++) {
            if (strcmp(name, type_names[i]) == 0) {
                *out = (cache_type)i;
                return BP_OK;
            }
        }
    }
    return bp_err(err, BP_E_INVAL,
                  "cache: unknown type '%s' (known types: odds, stats, predictions, static)",
                  name ? name : "(null)");
}

/* ============================================================================================
 * A small growable buffer with inline storage, so that building a key on the hit path usually
 * costs no allocation.
 * ========================================================================================== */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
    char inline_buf[256];
} sbuf;

static void sb_init(sbuf *b)
{
    b->p = b->inline_buf;
    b->len = 0;
    b->cap = sizeof b->inline_buf;
    b->oom = 0;
    b->p[0] = '\0';
}

static void sb_free(sbuf *b)
{
    if (b->p != b->inline_buf) {
        free(b->p);
    }
    sb_init(b);
}

static int sb_reserve(sbuf *b, size_t extra)
{
    size_t need = b->len + extra + 1, cap;
    char *np;
    if (b->oom) {
        return -1;
    }
    if (need <= b->cap) {
        return 0;
    }
    cap = b->cap * 2;
    while (cap < need) {
        cap *= 2;
    }
    if (b->p == b->inline_buf) {
        np = malloc(cap);
        if (np) {
            memcpy(np, b->p, b->len + 1);
        }
    } else {
        np = realloc(b->p, cap);
    }
    if (!np) {
        b->oom = 1;
        return -1;
    }
    b->p = np;
    b->cap = cap;
    return 0;
}

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (sb_reserve(b, n) == 0) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
    }
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_putc(sbuf *b, char ch)
{
    sb_put(b, &ch, 1);
}

/* A heap copy of the contents (NULL when out of memory). */
static char *sb_take(sbuf *b)
{
    char *s;
    if (b->oom) {
        sb_free(b);
        return NULL;
    }
    if (b->p == b->inline_buf) {
        s = malloc(b->len + 1);
        if (s) {
            memcpy(s, b->p, b->len + 1);
        }
    } else {
        s = b->p;
    }
    sb_init(b);
    return s;
}

/* ============================================================================================
 * Canonical filters: compact JSON, object keys sorted bytewise at every depth, reals that hold
 * an integer written as that integer (2.0 -> 2), other reals in the shortest form that reads
 * back to the same double.
 * ========================================================================================== */

static void canon_string(sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0; /* start of the current run of characters copied as they are */
    sb_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[6];
        size_t elen = 2;
        if (ch >= 0x20 && ch != '"' && ch != '\\' && ch != 0x7f) {
            continue;
        }
        sb_put(b, s + run, i - run);
        run = i + 1;
        esc[0] = '\\';
        switch (ch) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            elen = 6;
        }
        sb_put(b, esc, elen);
    }
    sb_put(b, s + run, n - run);
    sb_putc(b, '"');
}

/* Decimal integer without printf (this is on every lookup's path). */
static void canon_int(sbuf *b, long long v)
{
    char num[24];
    size_t i = sizeof num;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        num[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) {
        num[--i] = '-';
    }
    sb_put(b, num + i, sizeof num - i);
}

static void canon_real(sbuf *b, double d)
{
    char num[40];
    if (d == floor(d) && fabs(d) < 9007199254740992.0) {
        canon_int(b, (long long)d);
        return;
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(num, sizeof num, "%.*g", prec, d);
            if (strtod(num, NULL) == d) {
                break;
            }
        }
    }
    sb_puts(b, num);
}

typedef struct canon_kv {
    const char *key;
    size_t len;
    json_t *value;
} canon_kv;

static int canon_kv_cmp(const void *a, const void *b)
{
    const canon_kv *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, n);
    if (c) {
        return c;
    }
    return (x->len > y->len) - (x->len < y->len);
}

static int canon_value(sbuf *b, const json_t *v, int depth, bp_error *err)
{
    if (depth > 64) {
        return bp_err(err, BP_E_INVAL, "cache: filters nest deeper than 64 levels");
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        canon_kv small[16];
        canon_kv *kv = small;
        const char *k;
        json_t *item;
        void *it;
        int rc = BP_OK;
        if (n > BP_ARRAY_LEN(small)) {
            kv = malloc(n * sizeof *kv);
            if (!kv) {
                return bp_err(err, BP_E_NOMEM, "cache: out of memory sorting filters");
            }
        }
        for (it = json_object_iter((json_t *)(uintptr_t)v); it && i < n;
             it = json_object_iter_next((json_t *)(uintptr_t)v, it)) {
            k = json_object_iter_key(it);
            item = json_object_iter_value(it);
            kv[i].key = k;
            kv[i].len = json_object_iter_key_len(it);
            kv[i].value = item;
            i++;
        }
        qsort(kv, i, sizeof *kv, canon_kv_cmp);
        sb_putc(b, '{');
        for (size_t j = 0; j < i && rc == BP_OK; j++) {
            if (j) {
                sb_putc(b, ',');
            }
            canon_string(b, kv[j].key, kv[j].len);
            sb_putc(b, ':');
            rc = canon_value(b, kv[j].value, depth + 1, err);
        }
        sb_putc(b, '}');
        if (kv != small) {
            free(kv);
        }
        return rc;
    }
    case JSON_ARRAY: {
        sb_putc(b, '[');
        for (size_t j = 0; j < json_array_size(v); j++) {
            int rc;
            if (j) {
                sb_putc(b, ',');
            }
            rc = canon_value(b, json_array_get(v, j), depth + 1, err);
            if (rc != BP_OK) {
                return rc;
            }
        }
        sb_putc(b, ']');
        return BP_OK;
    }
    case JSON_STRING: canon_string(b, json_string_value(v), json_string_length(v)); return BP_OK;
    case JSON_INTEGER: canon_int(b, (long long)json_integer_value(v)); return BP_OK;
    case JSON_REAL: canon_real(b, json_real_value(v)); return BP_OK;
    case JSON_TRUE: sb_puts(b, "true"); return BP_OK;
    case JSON_FALSE: sb_puts(b, "false"); return BP_OK;
    case JSON_NULL: sb_puts(b, "null"); return BP_OK;
    }
    return bp_err(err, BP_E_INVAL, "cache: filters hold a value of unknown JSON type");
}

/* Append the canonical form of filters (NULL = {}) to b. */
static int canon_append(sbuf *b, const json_t *filters, bp_error *err)
{
    int rc;
    if (!filters) {
        sb_puts(b, "{}");
        return BP_OK;
    }
    rc = canon_value(b, filters, 0, err);
    if (rc == BP_OK && b->oom) {
        rc = bp_err(err, BP_E_NOMEM, "cache: out of memory building a key");
    }
    return rc;
}

int cache_canonical(const json_t *filters, char **out_text, bp_error *err)
{
    sbuf b;
    int rc;
    sb_init(&b);
    rc = canon_append(&b, filters, err);
    if (rc != BP_OK) {
        sb_free(&b);
        return rc;
    }
    *out_text = sb_take(&b);
    return *out_text ? BP_OK : bp_err(err, BP_E_NOMEM, "cache: out of memory");
}

/* ============================================================================================
 * SHA-1 (FIPS 180-4), for the key part of long filters. Not for security: only to turn a long
 * canonical form into a short, collision-free name.
 * ========================================================================================== */

static uint32_t rol32(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80], a, b, c, d, e;
    for (int i = 0; i < 16; i++) {
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    }
    for (int i = 16; i < 80; i++) {
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    }
    a = h[0];
    b = h[1];
    c = h[2];
    d = h[3];
    e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k, t;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999u;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1u;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6u;
        }
        t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void cache_sha1(const void *data, size_t len, unsigned char out[20])
{
    uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    const unsigned char *p = data;
    unsigned char tail[128];
    size_t full = len / 64 * 64, rest = len - full, tlen;
    uint64_t bits = (uint64_t)len * 8;

    for (size_t off = 0; off < full; off += 64) {
        sha1_block(h, p + off);
    }
    memset(tail, 0, sizeof tail);
    if (rest) {
        memcpy(tail, p + full, rest);
    }
    tail[rest] = 0x80;
    tlen = rest + 1 + 8 <= 64 ? 64 : 128;
    for (int i = 0; i < 8; i++) {
        tail[tlen - 1 - (size_t)i] = (unsigned char)(bits >> (8 * i));
    }
    sha1_block(h, tail);
    if (tlen == 128) {
        sha1_block(h, tail + 64);
    }
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
}

/* ============================================================================================
 * Glob matching with Redis's syntax (so the memory backend and SCAN MATCH agree): * ? [set]
 * [^set] [a-z] and \ escaping. Iterative with one back-tracking point, so a pattern with many
 * stars stays linear-ish instead of exponential.
 * ========================================================================================== */

/* Does class [..] starting at p (just after '[') match ch? *end gets the char after ']'. */
static int glob_class(const char *p, unsigned char ch, const char **end)
{
    int negate = 0, match = 0;
    if (*p == '^') {
        negate = 1;
        p++;
    }
    while (*p && *p != ']') {
        if (*p == '\\' && p[1]) {
            p++;
            if ((unsigned char)*p == ch) {
                match = 1;
            }
            p++;
        } else if (p[1] == '-' && p[2] && p[2] != ']') {
            unsigned char lo = (unsigned char)p[0], hi = (unsigned char)p[2];
            if (lo > hi) {
                unsigned char t = lo;
                lo = hi;
                hi = t;
            }
            if (ch >= lo && ch <= hi) {
                match = 1;
            }
            p += 3;
        } else {
            if ((unsigned char)*p == ch) {
                match = 1;
            }
            p++;
        }
    }
    *end = *p ? p + 1 : p;
    return negate ? !match : match;
}

int cache_glob_match(const char *pattern, const char *str, size_t len)
{
    const char *p = pattern, *star_p = NULL;
    size_t s = 0, star_s = 0;
    while (s < len) {
        const char *next = NULL;
        int ok = 0;
        if (*p == '*') {
            while (*p == '*') {
                p++;
            }
            if (!*p) {
                return 1;
            }
            star_p = p;
            star_s = s;
            continue;
        }
        if (*p == '?') {
            ok = 1;
            next = p + 1;
        } else if (*p == '[') {
            ok = glob_class(p + 1, (unsigned char)str[s], &next);
        } else if (*p == '\\' && p[1]) {
            ok = p[1] == str[s];
            next = p + 2;
        } else if (*p) {
            ok = *p == str[s];
            next = p + 1;
        }
        if (ok) {
            p = next;
            s++;
        } else if (star_p) {
            p = star_p;
            s = ++star_s;
        } else {
            return 0;
        }
    }
    while (*p == '*') {
        p++;
    }
    return *p == '\0';
}

/* Escape the glob characters of a literal so that it matches only itself. */
static char *glob_escape(const char *s)
{
    sbuf b;
    sb_init(&b);
    for (; *s; s++) {
        if (strchr("*?[]\\", *s)) {
            sb_putc(&b, '\\');
        }
        sb_putc(&b, *s);
    }
    return sb_take(&b);
}

/* ============================================================================================
 * Keys
 * ========================================================================================== */

/* Replace a too-long key part (starting at offset `part`) by head~sha1. */
static void key_shorten(sbuf *b, size_t part)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[20];
    char tail[1 + 40];
    size_t head = CACHE_KEY_HEAD_BYTES;
    cache_sha1(b->p + part, b->len - part, digest);
    /* Do not cut a UTF-8 sequence in half: back up over continuation bytes. */
    while (head > 0 && ((unsigned char)b->p[part + head] & 0xC0) == 0x80) {
        head--;
    }
    tail[0] = '~';
    for (int i = 0; i < 20; i++) {
        tail[1 + 2 * i] = hex[digest[i] >> 4];
        tail[2 + 2 * i] = hex[digest[i] & 15];
    }
    b->len = part + head;
    sb_put(b, tail, sizeof tail);
}

/* Build "<key_prefix><type>:<part>" into b (initialised by the caller). */
static int key_build(const cache *c, cache_type t, const json_t *filters, sbuf *b, bp_error *err)
{
    size_t part;
    int rc;
    sb_puts(b, c->key_prefix);
    sb_puts(b, type_names[t]);
    sb_putc(b, ':');
    part = b->len;
    rc = canon_append(b, filters, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (b->len - part > CACHE_KEY_INLINE_MAX) {
        key_shorten(b, part);
    }
    if (b->oom) {
        return bp_err(err, BP_E_NOMEM, "cache: out of memory building a key");
    }
    return BP_OK;
}

/* Parse the type and build the key: the common first step of every entry operation. */
static int key_for(const cache *c, const char *type, const json_t *filters, cache_type *out_t,
                   sbuf *b, bp_error *err)
{
    int rc = cache_type_parse(type, out_t, err);
    if (rc != BP_OK) {
        return rc;
    }
    return key_build(c, *out_t, filters, b, err);
}

int cache_key(const cache *c, const char *type, const json_t *filters, char **out_key,
              bp_error *err)
{
    sbuf b;
    cache_type t = CACHE_ODDS;
    int rc;
    sb_init(&b);
    rc = key_for(c, type, filters, &t, &b, err);
    if (rc != BP_OK) {
        sb_free(&b);
        return rc;
    }
    *out_key = sb_take(&b);
    return *out_key ? BP_OK : bp_err(err, BP_E_NOMEM, "cache: out of memory");
}

/* ============================================================================================
 * Blobs: [encoding][fresh_until BE64][stale_until BE64] then the JSON text, or for zlib
 * [raw length BE32][deflate stream].
 * ========================================================================================== */

static void put_be64(unsigned char *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)u;
        u >>= 8;
    }
}

static int64_t get_be64(const unsigned char *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) {
        u = (u << 8) | p[i];
    }
    return (int64_t)u;
}

static int dump_to_sbuf(const char *buffer, size_t size, void *data)
{
    sbuf *b = data;
    sb_put(b, buffer, size);
    return b->oom ? -1 : 0;
}

/* Encode value into a new heap blob. */
static int blob_encode(const cache *c, const json_t *value, int64_t fresh_until,
                       int64_t stale_until, unsigned char **out, size_t *out_len, bp_error *err)
{
    sbuf b;
    size_t text_len;
    unsigned char *blob = NULL;
    if (!value) {
        return bp_err(err, BP_E_INVAL, "cache: cannot store a NULL value");
    }
    sb_init(&b);
    sb_put(&b, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", CACHE_BLOB_HEADER);
    if (json_dump_callback(value, dump_to_sbuf, &b, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        sb_free(&b);
        return bp_err(err, BP_E_NOMEM, "cache: could not serialise the value");
    }
    text_len = b.len - CACHE_BLOB_HEADER;
    if (text_len > CACHE_MAX_VALUE_BYTES) {
        sb_free(&b);
        return bp_err(err, BP_E_LIMIT, "cache: a value of %zu bytes is over the %u byte limit",
                      text_len, CACHE_MAX_VALUE_BYTES);
    }
    if (c->compress_threshold && text_len >= c->compress_threshold) {
        uLongf zlen = compressBound((uLong)text_len);
        unsigned char *z = malloc(CACHE_BLOB_HEADER + 4 + zlen);
        if (z &&
            compress2(z + CACHE_BLOB_HEADER + 4, &zlen, (const Bytef *)b.p + CACHE_BLOB_HEADER,
                      (uLong)text_len, Z_BEST_SPEED) == Z_OK &&
            zlen + 4 < text_len) {
            z[0] = CACHE_BLOB_ENC_ZLIB;
            z[CACHE_BLOB_HEADER] = (unsigned char)(text_len >> 24);
            z[CACHE_BLOB_HEADER + 1] = (unsigned char)(text_len >> 16);
            z[CACHE_BLOB_HEADER + 2] = (unsigned char)(text_len >> 8);
            z[CACHE_BLOB_HEADER + 3] = (unsigned char)text_len;
            blob = z;
            *out_len = CACHE_BLOB_HEADER + 4 + zlen;
        } else {
            free(z); /* not worth it (or no memory): store it plain */
        }
    }
    if (!blob) {
        blob = (unsigned char *)sb_take(&b);
        if (!blob) {
            return bp_err(err, BP_E_NOMEM, "cache: out of memory encoding a value");
        }
        blob[0] = CACHE_BLOB_ENC_JSON;
        *out_len = CACHE_BLOB_HEADER + text_len;
    } else {
        sb_free(&b);
    }
    put_be64(blob + 1, fresh_until);
    put_be64(blob + 9, stale_until);
    *out = blob;
    return BP_OK;
}

/* Read the header of a blob. */
static int blob_header(const unsigned char *blob, size_t len, int64_t *out_fresh_until,
                       int64_t *out_stale_until, bp_error *err)
{
    if (len < CACHE_BLOB_HEADER ||
        (blob[0] != CACHE_BLOB_ENC_JSON && blob[0] != CACHE_BLOB_ENC_ZLIB)) {
        return bp_err(err, BP_E_CORRUPT, "cache: entry has no valid header (%zu bytes)", len);
    }
    *out_fresh_until = get_be64(blob + 1);
    *out_stale_until = get_be64(blob + 9);
    return BP_OK;
}

/* Decode the value of a blob (header already checked). *out: a new reference. */
static int blob_value(const unsigned char *blob, size_t len, json_t **out, bp_error *err)
{
    json_error_t jerr;
    const unsigned char *p = blob + CACHE_BLOB_HEADER;
    size_t n = len - CACHE_BLOB_HEADER;
    unsigned char *raw = NULL;
    json_t *v;
    if (blob[0] == CACHE_BLOB_ENC_ZLIB) {
        uLongf raw_len;
        uint32_t want;
        if (n < 4) {
            return bp_err(err, BP_E_CORRUPT, "cache: truncated compressed entry");
        }
        want = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (want > CACHE_MAX_VALUE_BYTES) {
            return bp_err(err, BP_E_CORRUPT, "cache: compressed entry claims %u bytes", want);
        }
        raw = malloc(want ? want : 1);
        if (!raw) {
            return bp_err(err, BP_E_NOMEM, "cache: out of memory inflating an entry");
        }
        raw_len = want;
        if (uncompress(raw, &raw_len, p + 4, (uLong)(n - 4)) != Z_OK || raw_len != want) {
            free(raw);
            return bp_err(err, BP_E_CORRUPT, "cache: compressed entry does not inflate");
        }
        p = raw;
        n = raw_len;
    }
    v = json_loadb((const char *)p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    free(raw);
    if (!v) {
        return bp_err(err, BP_E_CORRUPT, "cache: entry is not valid JSON: %s", jerr.text);
    }
    *out = v;
    return BP_OK;
}

/* ============================================================================================
 * Counters
 * ========================================================================================== */

static void count(cache *c, cache_type t, int which)
{
    atomic_fetch_add_explicit(&c->ctr[t][which], 1, memory_order_relaxed);
}

/* Push this process's counter increments into the backend's shared counters (Redis) and
 * optionally read the totals back. Only one thread flushes at a time; the others skip. */
static int counters_flush(cache *c, uint64_t *out_totals, int wait, bp_error *err)
{
    uint64_t deltas[CACHE_TYPE_COUNT][CACHE_COUNTER_COUNT];
    uint64_t now_vals[CACHE_TYPE_COUNT][CACHE_COUNTER_COUNT];
    int rc;
    if (!c->backend->ops->counters) {
        return BP_E_NOTFOUND;
    }
    if (wait) {
        pthread_mutex_lock(&c->flush_lock);
    } else if (pthread_mutex_trylock(&c->flush_lock) != 0) {
        return BP_E_STATE;
    }
    for (int t = 0; t < CACHE_TYPE_COUNT; t++) {
        for (int k = 0; k < CACHE_COUNTER_COUNT; k++) {
            now_vals[t][k] = atomic_load_explicit(&c->ctr[t][k], memory_order_relaxed);
            deltas[t][k] = now_vals[t][k] - c->flushed[t][k];
        }
    }
    rc = c->backend->ops->counters(c->backend, &deltas[0][0], out_totals, err);
    if (rc == BP_OK) {
        memcpy(c->flushed, now_vals, sizeof now_vals);
    }
    atomic_store_explicit(&c->next_flush_ns, util_mono_ns() + CACHE_COUNTER_FLUSH_NS,
                          memory_order_relaxed);
    pthread_mutex_unlock(&c->flush_lock);
    return rc;
}

/* ============================================================================================
 * Outages
 * ========================================================================================== */

/* May this operation use the backend? While down, only one caller per back-off period gets to
 * probe it; the others are told it is unavailable at no cost. */
static int backend_usable(cache *c)
{
    int64_t retry_at, now;
    if (!atomic_load_explicit(&c->down, memory_order_relaxed)) {
        return 1;
    }
    retry_at = atomic_load_explicit(&c->retry_at_ns, memory_order_relaxed);
    now = util_mono_ns();
    if (now < retry_at) {
        return 0;
    }
    /* Claim the probe: push retry_at forward so that concurrent callers do not all probe. */
    return atomic_compare_exchange_strong(&c->retry_at_ns, &retry_at,
                                          now + CACHE_BACKOFF_MAX_MS * 1000000LL);
}

/* Record the outcome of a backend call. */
static void backend_result(cache *c, int rc, const bp_error *err)
{
    if (rc == BP_E_UNAVAILABLE) {
        pthread_mutex_lock(&c->health_lock);
        if (!atomic_load(&c->down)) {
            c->backoff_ms = CACHE_BACKOFF_MIN_MS;
            c->down_since_ns = util_mono_ns();
            util_strlcpy(c->down_reason, err ? err->msg : "", sizeof c->down_reason);
            log_warn("cache",
                     "backend unavailable, running without the cache until it is back "
                     "backend=%s error=\"%s\"",
                     c->backend->ops->name, c->down_reason);
            atomic_store(&c->down, 1);
        } else if (c->backoff_ms < CACHE_BACKOFF_MAX_MS) {
            c->backoff_ms *= 2;
            if (c->backoff_ms > CACHE_BACKOFF_MAX_MS) {
                c->backoff_ms = CACHE_BACKOFF_MAX_MS;
            }
        }
        atomic_store(&c->retry_at_ns, util_mono_ns() + c->backoff_ms * 1000000LL);
        pthread_mutex_unlock(&c->health_lock);
    } else if (atomic_load_explicit(&c->down, memory_order_relaxed)) {
        pthread_mutex_lock(&c->health_lock);
        if (atomic_load(&c->down)) {
            atomic_store(&c->down, 0);
            log_info("cache", "backend recovered backend=%s outage_ms=%lld", c->backend->ops->name,
                     (long long)((util_mono_ns() - c->down_since_ns) / 1000000));
        }
        pthread_mutex_unlock(&c->health_lock);
    }
}

/* After a successful entry operation, flush shared counters about once a second. */
static void maybe_flush(cache *c)
{
    if (c->backend->ops->counters &&
        util_mono_ns() >= atomic_load_explicit(&c->next_flush_ns, memory_order_relaxed)) {
        bp_error e = {0};
        int rc = counters_flush(c, NULL, 0, &e);
        if (rc == BP_E_UNAVAILABLE) {
            backend_result(c, rc, &e);
        }
    }
}

/* Has this process counted anything it has not flushed yet? (0 while another thread flushes.) */
static int counters_pending(cache *c)
{
    int pending = 0;
    if (pthread_mutex_trylock(&c->flush_lock) != 0) {
        return 0;
    }
    for (int t = 0; t < CACHE_TYPE_COUNT && !pending; t++) {
        for (int k = 0; k < CACHE_COUNTER_COUNT && !pending; k++) {
            pending = atomic_load_explicit(&c->ctr[t][k], memory_order_relaxed) != c->flushed[t][k];
        }
    }
    pthread_mutex_unlock(&c->flush_lock);
    return pending;
}

/*
 * Shared counters are flushed after an entry operation once the second is up; a process that
 * then goes idle - a daemon between jobs - would keep its last increments to itself until its
 * next operation, and `betpipe cache stats` would not see them. This thread flushes them once a
 * second while there are any (and is, then, the one that probes a backend that is down).
 */
static void *flusher_main(void *arg)
{
    cache *c = arg;
    pthread_mutex_lock(&c->flusher_lock);
    while (!c->flusher_stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += CACHE_COUNTER_FLUSH_NS / 1000000000LL;
        pthread_cond_timedwait(&c->flusher_cond, &c->flusher_lock, &until);
        if (c->flusher_stop) {
            break;
        }
        pthread_mutex_unlock(&c->flusher_lock);
        if (util_mono_ns() >= atomic_load_explicit(&c->next_flush_ns, memory_order_relaxed) &&
            counters_pending(c) && backend_usable(c)) {
            bp_error e = {0};
            int rc = counters_flush(c, NULL, 0, &e);
            if (rc != BP_E_STATE) {
                backend_result(c, rc, &e);
            }
        }
        pthread_mutex_lock(&c->flusher_lock);
    }
    pthread_mutex_unlock(&c->flusher_lock);
    return NULL;
}

static void flusher_start(cache *c)
{
    pthread_condattr_t attr;
    pthread_mutex_init(&c->flusher_lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->flusher_cond, &attr);
    pthread_condattr_destroy(&attr);
    /* Without the thread the counters still flush on the next operation: not fatal. */
    c->flusher_started = pthread_create(&c->flusher, NULL, flusher_main, c) == 0 ? 1 : -1;
    if (c->flusher_started < 0) {
        log_warn("cache", "no counter flush thread: idle processes flush on their next operation");
    }
}

static void flusher_stop(cache *c)
{
    if (!c->flusher_started) {
        return;
    }
    if (c->flusher_started > 0) {
        pthread_mutex_lock(&c->flusher_lock);
        c->flusher_stop = 1;
        pthread_cond_signal(&c->flusher_cond);
        pthread_mutex_unlock(&c->flusher_lock);
        pthread_join(c->flusher, NULL);
    }
    pthread_cond_destroy(&c->flusher_cond);
    pthread_mutex_destroy(&c->flusher_lock);
    c->flusher_started = 0;
}

int cache_available(const cache *c)
{
    return !atomic_load(&((cache *)(uintptr_t)c)->down);
}

/* ============================================================================================
 * Fetching one entry
 * ========================================================================================== */

typedef enum { FETCH_MISS, FETCH_STALE, FETCH_FRESH } fetch_state;

/* Look `key` up. With want_stale, a stale entry's value is decoded too. A corrupt entry is
 * logged, removed and reported as a miss. Backend errors are reported as a miss as well (and
 * recorded for the outage logic). */
static fetch_state fetch(cache *c, const char *key, size_t key_len, int want_stale,
                         json_t **out_value)
{
    unsigned char *blob = NULL;
    size_t len = 0;
    int64_t fresh_until = 0, stale_until = 0, now;
    fetch_state st = FETCH_MISS;
    bp_error e = {0};
    int rc;

    *out_value = NULL;
    if (!backend_usable(c)) {
        return FETCH_MISS;
    }
    if (c->backend->ops->get_value) {
        /* In-process backend: it copies its kept value instead of us parsing the blob. */
        json_t *v = NULL;
        rc = c->backend->ops->get_value(c->backend, key, key_len, &v, &fresh_until, &stale_until,
                                        &e);
        if (rc == BP_OK) {
            now = util_now_ms();
            st = now >= stale_until ? FETCH_MISS : now < fresh_until ? FETCH_FRESH : FETCH_STALE;
            if (st == FETCH_FRESH || (st == FETCH_STALE && want_stale)) {
                *out_value = v;
            } else {
                json_decref(v);
            }
            return st;
        }
        if (rc != BP_E_STATE) {
            return FETCH_MISS;
        }
    }
    rc = c->backend->ops->get(c->backend, key, key_len, &blob, &len, &e);
    backend_result(c, rc, &e);
    if (rc != BP_OK) {
        if (rc != BP_E_NOTFOUND && rc != BP_E_UNAVAILABLE) {
            log_warn("cache", "get failed, treated as a miss key=%s error=\"%s\"", key, e.msg);
        }
        return FETCH_MISS;
    }
    maybe_flush(c);
    rc = blob_header(blob, len, &fresh_until, &stale_until, &e);
    if (rc == BP_OK) {
        now = util_now_ms();
        if (now >= stale_until) {
            st = FETCH_MISS;
        } else {
            st = now < fresh_until ? FETCH_FRESH : FETCH_STALE;
            if (st == FETCH_FRESH || want_stale) {
                rc = blob_value(blob, len, out_value, &e);
            }
        }
    }
    free(blob);
    if (rc != BP_OK) {
        log_warn("cache", "dropping an unreadable entry key=%s error=\"%s\"", key, e.msg);
        c->backend->ops->del(c->backend, key, key_len, NULL, &e);
        return FETCH_MISS;
    }
    return st;
}

/* ============================================================================================
 * Entry operations
 * ========================================================================================== */

int cache_get(cache *c, const char *type, const json_t *filters, json_t **out_value, bp_error *err)
{
    sbuf key;
    cache_type t = CACHE_ODDS;
    json_t *v = NULL;
    int rc;
    sb_init(&key);
    rc = key_for(c, type, filters, &t, &key, err);
    if (rc != BP_OK) {
        goto fail;
    }
    if (fetch(c, key.p, key.len, 0, &v) == FETCH_FRESH) {
        count(c, t, CACHE_CTR_HITS);
        *out_value = v;
        rc = BP_OK;
    } else {
        count(c, t, CACHE_CTR_MISSES);
        rc = BP_E_NOTFOUND;
        bp_err(err, rc, "cache: no fresh %s entry for %s", type_names[t], key.p);
    }
fail:
    sb_free(&key);
    return rc;
}

int cache_mget(cache *c, const char *type, const json_t *const *filters, size_t n,
               json_t **out_values, bp_error *err)
{
    cache_item *items = NULL;
    sbuf *keys = NULL;
    cache_type t = CACHE_ODDS;
    int rc = cache_type_parse(type, &t, err);
    size_t built = 0;
    int64_t now;
    if (rc != BP_OK) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        out_values[i] = NULL;
    }
    if (n == 0) {
        return BP_OK;
    }
    items = calloc(n, sizeof *items);
    keys = malloc(n * sizeof *keys);
    if (!items || !keys) {
        rc = bp_err(err, BP_E_NOMEM, "cache: out of memory for a batch of %zu", n);
        goto fail;
    }
    for (; built < n; built++) {
        sb_init(&keys[built]);
        rc = key_build(c, t, filters[built], &keys[built], err);
        if (rc != BP_OK) {
            built++;
            goto fail;
        }
        items[built].key = keys[built].p;
        items[built].key_len = keys[built].len;
        items[built].type = t;
    }
    if (c->backend->ops->get_value) {
        /* in-process: no round trips to save, and each lookup copies a kept value */
        for (size_t i = 0; i < n; i++) {
            json_t *v = NULL;
            if (fetch(c, items[i].key, items[i].key_len, 0, &v) == FETCH_FRESH) {
                out_values[i] = v;
            } else {
                json_decref(v);
            }
        }
    } else if (backend_usable(c)) {
        bp_error e = {0};
        rc = c->backend->ops->mget(c->backend, items, n, &e);
        backend_result(c, rc, &e);
        if (rc != BP_OK && rc != BP_E_UNAVAILABLE) {
            log_warn("cache", "mget failed, treated as misses error=\"%s\"", e.msg);
        }
        if (rc == BP_OK) {
            maybe_flush(c);
        }
    }
    now = util_now_ms();
    for (size_t i = 0; i < n; i++) {
        int64_t fresh_until = 0, stale_until = 0;
        if (items[i].out_blob &&
            blob_header(items[i].out_blob, items[i].out_len, &fresh_until, &stale_until, NULL) ==
                BP_OK &&
            now < fresh_until) {
            blob_value(items[i].out_blob, items[i].out_len, &out_values[i], NULL);
        }
        count(c, t, out_values[i] ? CACHE_CTR_HITS : CACHE_CTR_MISSES);
        free(items[i].out_blob);
    }
    rc = BP_OK;
fail:
    for (size_t i = 0; i < built; i++) {
        sb_free(&keys[i]);
    }
    free(keys);
    free(items);
    return rc;
}

/* Encode and store under key. Skips (counted) when the backend is down. */
static int store_value(cache *c, cache_type t, const char *key, size_t key_len, const json_t *value,
                       bp_error *err)
{
    cache_item it = {0};
    unsigned char *blob = NULL;
    size_t len = 0;
    int64_t now = util_now_ms();
    int64_t fresh_until = now + c->ttl_ms[t];
    int64_t stale_until = now + (int64_t)((double)c->ttl_ms[t] * c->stale_factor);
    bp_error e = {0};
    int rc = blob_encode(c, value, fresh_until, stale_until, &blob, &len, err);
    if (rc != BP_OK) {
        count(c, t, CACHE_CTR_SETS_SKIPPED);
        return rc;
    }
    if (!backend_usable(c)) {
        free(blob);
        count(c, t, CACHE_CTR_SETS_SKIPPED);
        return BP_OK;
    }
    it.key = key;
    it.key_len = key_len;
    it.type = t;
    it.blob = blob;
    it.blob_len = len;
    it.fresh_until_ms = fresh_until;
    it.expire_at_ms = stale_until;
    it.value = blob[0] == CACHE_BLOB_ENC_JSON ? value : NULL;
    rc = c->backend->ops->set(c->backend, &it, &e);
    free(blob);
    backend_result(c, rc, &e);
    if (rc == BP_OK) {
        count(c, t, CACHE_CTR_SETS);
        maybe_flush(c);
        return BP_OK;
    }
    count(c, t, CACHE_CTR_SETS_SKIPPED);
    if (rc == BP_E_UNAVAILABLE) {
        return BP_OK;
    }
    if (err) {
        *err = e;
    }
    return rc;
}

int cache_set(cache *c, const char *type, const json_t *filters, const json_t *value, bp_error *err)
{
    sbuf key;
    cache_type t = CACHE_ODDS;
    int rc;
    sb_init(&key);
    rc = key_for(c, type, filters, &t, &key, err);
    if (rc == BP_OK) {
        rc = store_value(c, t, key.p, key.len, value, err);
    }
    sb_free(&key);
    return rc;
}

int cache_mset(cache *c, const char *type, const json_t *const *filters,
               const json_t *const *values, size_t n, bp_error *err)
{
    cache_item *items = NULL;
    sbuf *keys = NULL;
    cache_type t = CACHE_ODDS;
    size_t built = 0;
    int64_t now = util_now_ms();
    bp_error e = {0};
    int rc = cache_type_parse(type, &t, err);
    if (rc != BP_OK || n == 0) {
        return rc;
    }
    items = calloc(n, sizeof *items);
    keys = malloc(n * sizeof *keys);
    if (!items || !keys) {
        rc = bp_err(err, BP_E_NOMEM, "cache: out of memory for a batch of %zu", n);
        goto fail;
    }
    for (; built < n; built++) {
        int64_t stale_until = now + (int64_t)((double)c->ttl_ms[t] * c->stale_factor);
        unsigned char *blob = NULL;
        size_t len = 0;
        sb_init(&keys[built]);
        rc = key_build(c, t, filters[built], &keys[built], err);
        if (rc == BP_OK) {
            rc = blob_encode(c, values[built], now + c->ttl_ms[t], stale_until, &blob, &len, err);
        }
        if (rc != BP_OK) {
            built++;
            goto fail;
        }
        items[built].key = keys[built].p;
        items[built].key_len = keys[built].len;
        items[built].type = t;
        items[built].blob = blob;
        items[built].blob_len = len;
        items[built].fresh_until_ms = now + c->ttl_ms[t];
        items[built].expire_at_ms = stale_until;
        items[built].value = blob[0] == CACHE_BLOB_ENC_JSON ? values[built] : NULL;
    }
    if (!backend_usable(c)) {
        atomic_fetch_add(&c->ctr[t][CACHE_CTR_SETS_SKIPPED], n);
        rc = BP_OK;
        goto fail;
    }
    rc = c->backend->ops->mset(c->backend, items, n, &e);
    backend_result(c, rc, &e);
    if (rc == BP_OK) {
        atomic_fetch_add(&c->ctr[t][CACHE_CTR_SETS], n);
        maybe_flush(c);
    } else {
        atomic_fetch_add(&c->ctr[t][CACHE_CTR_SETS_SKIPPED], n);
        if (rc == BP_E_UNAVAILABLE) {
            rc = BP_OK;
        } else if (err) {
            *err = e;
        }
    }
fail:
    for (size_t i = 0; i < built; i++) {
        sb_free(&keys[i]);
        free((void *)(uintptr_t)items[i].blob);
    }
    free(keys);
    free(items);
    return rc;
}

int cache_del(cache *c, const char *type, const json_t *filters, bp_error *err)
{
    sbuf key;
    cache_type t = CACHE_ODDS;
    bp_error e = {0};
    int rc;
    sb_init(&key);
    rc = key_for(c, type, filters, &t, &key, err);
    if (rc == BP_OK && backend_usable(c)) {
        rc = c->backend->ops->del(c->backend, key.p, key.len, NULL, &e);
        backend_result(c, rc, &e);
        if (rc == BP_E_UNAVAILABLE) {
            rc = BP_OK;
        } else if (rc != BP_OK && err) {
            *err = e;
        }
    }
    sb_free(&key);
    return rc;
}

/* ============================================================================================
 * Cache-aside with single-flight and stale fallback
 * ========================================================================================== */

static size_t flight_bucket(const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *key; key++) {
        h = (h ^ (unsigned char)*key) * 1099511628211ULL;
    }
    return (size_t)(h % CACHE_FLIGHT_BUCKETS);
}

static void flight_release(flight *f)
{
    /* flight_lock held */
    if (--f->refs == 0) {
        json_decref(f->value);
        free(f->key);
        pthread_cond_destroy(&f->cond);
        free(f);
    }
}

/* Join the flight of `key`, creating it if there is none. *out_leader = 1 for the creator. */
static flight *flight_join(cache *c, const char *key, int *out_leader)
{
    size_t bi = flight_bucket(key);
    flight *f;
    pthread_mutex_lock(&c->flight_lock);
    for (f = c->flights[bi]; f; f = f->next) {
        if (strcmp(f->key, key) == 0) {
            f->refs++;
            *out_leader = 0;
            pthread_mutex_unlock(&c->flight_lock);
            return f;
        }
    }
    f = calloc(1, sizeof *f);
    if (f) {
        f->key = util_strdup(key);
        if (!f->key || pthread_cond_init(&f->cond, NULL) != 0) {
            free(f->key);
            free(f);
            f = NULL;
        }
    }
    if (f) {
        f->refs = 1;
        f->next = c->flights[bi];
        c->flights[bi] = f;
    }
    *out_leader = 1;
    pthread_mutex_unlock(&c->flight_lock);
    return f; /* NULL: no memory; the caller computes on its own */
}

int cache_flight_waiters(cache *c, const char *type, const json_t *filters)
{
    sbuf key;
    cache_type t = CACHE_ODDS;
    int n = 0;
    sb_init(&key);
    if (key_for(c, type, filters, &t, &key, NULL) == BP_OK) {
        pthread_mutex_lock(&c->flight_lock);
        for (flight *f = c->flights[flight_bucket(key.p)]; f; f = f->next) {
            if (strcmp(f->key, key.p) == 0) {
                n = f->refs - 1;
            }
        }
        pthread_mutex_unlock(&c->flight_lock);
    }
    sb_free(&key);
    return n;
}

/* Leader: publish the outcome, wake the waiters, leave the table. `value` is borrowed: waiters
 * get deep copies of a private copy, so the leader's caller may modify its own value. */
static void flight_land(cache *c, flight *f, int rc, const json_t *value, int stale,
                        const bp_error *err)
{
    size_t bi = flight_bucket(f->key);
    flight **pp;
    pthread_mutex_lock(&c->flight_lock);
    for (pp = &c->flights[bi]; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    f->rc = rc;
    f->stale = stale;
    if (err) {
        f->err = *err;
    }
    if (rc == BP_OK && f->refs > 1) {
        f->value = json_deep_copy(value);
        if (!f->value) {
            f->rc = bp_err(&f->err, BP_E_NOMEM, "cache: out of memory sharing a value");
        }
    }
    f->done = 1;
    pthread_cond_broadcast(&f->cond);
    flight_release(f);
    pthread_mutex_unlock(&c->flight_lock);
}

/* Waiter: block until the leader lands, then take a copy of its outcome. */
static int flight_wait(cache *c, flight *f, json_t **out_value, int *out_stale, bp_error *err)
{
    int rc;
    pthread_mutex_lock(&c->flight_lock);
    while (!f->done) {
        pthread_cond_wait(&f->cond, &c->flight_lock);
    }
    rc = f->rc;
    if (rc == BP_OK) {
        *out_value = json_deep_copy(f->value);
        *out_stale = f->stale;
        if (!*out_value) {
            rc = bp_err(err, BP_E_NOMEM, "cache: out of memory copying a value");
        }
    } else if (err) {
        *err = f->err;
    }
    flight_release(f);
    pthread_mutex_unlock(&c->flight_lock);
    return rc;
}

/*
 * The cross-process part of single-flight (Redis): take "<prefix>:cache-lock:<type>:<part>"
 * with SET NX PX. If another daemon holds it, wait - polling with a back-off from 2 to 50 ms -
 * until its value appears (return it: FETCH_FRESH), the lock disappears without a value (try to
 * take it ourselves), or lock_ms passes (compute anyway: a stuck daemon must not stall us).
 * *out_locked = 1 when we hold the lock and must release it.
 */
static fetch_state remote_lock(cache *c, const char *key, size_t key_len, const char *token,
                               int *out_locked, json_t **out_value)
{
    const cache_backend_ops *ops = c->backend->ops;
    char *lock_key;
    int64_t deadline = util_mono_ns() + c->lock_ms * 1000000LL, pause_ms = 2;
    fetch_state st = FETCH_MISS;
    *out_locked = 0;
    *out_value = NULL;
    if (!ops->lock || !backend_usable(c)) {
        return FETCH_MISS;
    }
    lock_key = util_asprintf("%s%s", c->lock_prefix, key + strlen(c->key_prefix));
    if (!lock_key) {
        return FETCH_MISS;
    }
    for (;;) {
        bp_error e = {0};
        int acquired = 0, held = 0;
        int rc = ops->lock(c->backend, lock_key, token, c->lock_ms, &acquired, &e);
        backend_result(c, rc, &e);
        if (rc != BP_OK || acquired) {
            *out_locked = rc == BP_OK;
            break;
        }
        /* Someone else computes. Wait for its value. */
        do {
            util_sleep_ms(pause_ms);
            pause_ms = pause_ms * 2 > 50 ? 50 : pause_ms * 2;
            st = fetch(c, key, key_len, 0, out_value);
            if (st == FETCH_FRESH) {
                goto done;
            }
            json_decref(*out_value);
            *out_value = NULL;
            st = FETCH_MISS;
            if (util_mono_ns() >= deadline) {
                log_warn("cache",
                         "gave up waiting for another process to compute key=%s "
                         "waited_ms=%lld",
                         key, (long long)c->lock_ms);
                goto done;
            }
            rc = ops->lock_held(c->backend, lock_key, &held, &e);
            backend_result(c, rc, &e);
            if (rc != BP_OK) {
                goto done;
            }
        } while (held);
    }
done:
    free(lock_key);
    return st;
}

static void remote_unlock(cache *c, const char *key, const char *token)
{
    bp_error e = {0};
    char *lock_key = util_asprintf("%s%s", c->lock_prefix, key + strlen(c->key_prefix));
    if (lock_key && backend_usable(c)) {
        int rc = c->backend->ops->unlock(c->backend, lock_key, token, &e);
        backend_result(c, rc, &e);
    }
    free(lock_key);
}

int cache_get_or_compute(cache *c, const char *type, const json_t *filters,
                         bp_cache_compute_fn compute, void *ud, json_t **out_value, int *out_stale,
                         bp_error *err)
{
    sbuf key;
    cache_type t = CACHE_ODDS;
    json_t *value = NULL, *stale_value = NULL;
    flight *f = NULL;
    int leader = 1, stale = 0, locked = 0, rc;
    char token[37];
    bp_error cerr = {0};

    if (out_stale) {
        *out_stale = 0;
    }
    if (!compute) {
        return bp_err(err, BP_E_INVAL, "cache: get_or_compute needs a compute function");
    }
    sb_init(&key);
    rc = key_for(c, type, filters, &t, &key, err);
    if (rc != BP_OK) {
        goto out;
    }
    switch (fetch(c, key.p, key.len, 1, &value)) {
    case FETCH_FRESH:
        count(c, t, CACHE_CTR_HITS);
        *out_value = value;
        rc = BP_OK;
        goto out;
    case FETCH_STALE: stale_value = value; break;
    case FETCH_MISS: break;
    }
    value = NULL;
    count(c, t, CACHE_CTR_MISSES);

    f = flight_join(c, key.p, &leader);
    if (!leader) {
        rc = flight_wait(c, f, out_value, &stale, err);
        if (rc == BP_OK && stale) {
            count(c, t, CACHE_CTR_STALE_SERVES);
        }
        if (out_stale) {
            *out_stale = stale;
        }
        goto out;
    }

    /* Leader. A flight may have landed between our fetch and our join: look once more. */
    if (fetch(c, key.p, key.len, 0, &value) == FETCH_FRESH) {
        rc = BP_OK;
        goto land;
    }
    json_decref(value);
    value = NULL;
    util_uuid7(token);
    if (remote_lock(c, key.p, key.len, token, &locked, &value) == FETCH_FRESH) {
        rc = BP_OK;
        goto land;
    }
    rc = compute(ud, &value, &cerr);
    if (rc == BP_OK && !value) {
        rc = bp_err(&cerr, BP_E_INTERNAL, "cache: compute for %s returned no value", key.p);
    }
    if (rc == BP_OK) {
        bp_error serr = {0};
        int src = store_value(c, t, key.p, key.len, value, &serr);
        if (src != BP_OK) {
            log_warn("cache", "could not store a computed value key=%s error=\"%s\"", key.p,
                     serr.msg);
        }
    } else if (stale_value) {
        log_warn("cache", "compute failed, serving the stale entry key=%s error=\"%s\"", key.p,
                 cerr.msg);
        json_decref(value);
        value = stale_value;
        stale_value = NULL;
        stale = 1;
        rc = BP_OK;
        count(c, t, CACHE_CTR_STALE_SERVES);
    } else {
        json_decref(value);
        value = NULL;
    }
    if (locked) {
        remote_unlock(c, key.p, token);
    }
land:
    if (f) {
        flight_land(c, f, rc, value, stale, &cerr);
    }
    if (rc == BP_OK) {
        *out_value = value;
        if (out_stale) {
            *out_stale = stale;
        }
    } else if (err) {
        *err = cerr;
    }
out:
    json_decref(stale_value);
    sb_free(&key);
    return rc;
}

/* ============================================================================================
 * Maintenance, statistics, CLI
 * ========================================================================================== */

/* Resolve an optional type: NULL -> all (*out_first = 0, *out_end = COUNT). */
static int type_range(const char *type, int *out_first, int *out_end, bp_error *err)
{
    cache_type t = CACHE_ODDS;
    if (!type) {
        *out_first = 0;
        *out_end = CACHE_TYPE_COUNT;
        return BP_OK;
    }
    if (cache_type_parse(type, &t, err) != BP_OK) {
        return BP_E_INVAL;
    }
    *out_first = (int)t;
    *out_end = (int)t + 1;
    return BP_OK;
}

/* A maintenance call must reach the backend: it reports unavailability as an error. */
static int backend_required(cache *c, bp_error *err)
{
    if (!backend_usable(c)) {
        return bp_err(err, BP_E_UNAVAILABLE, "cache: the %s backend is unavailable (%s)",
                      c->backend->ops->name, c->down_reason);
    }
    return BP_OK;
}

static int invalidate_types(cache *c, int first, int end, const char *pattern,
                            uint64_t per_type[CACHE_TYPE_COUNT], bp_error *err)
{
    int rc = backend_required(c, err);
    for (int t = first; t < end && rc == BP_OK; t++) {
        char *glob =
            util_asprintf("%s%s:%s", c->key_glob_prefix, type_names[t], pattern ? pattern : "*");
        bp_error e = {0};
        if (!glob) {
            return bp_err(err, BP_E_NOMEM, "cache: out of memory");
        }
        per_type[t] = 0;
        rc = c->backend->ops->invalidate(c->backend, (cache_type)t, glob, &per_type[t], &e);
        free(glob);
        backend_result(c, rc, &e);
        if (rc != BP_OK && err) {
            *err = e;
        }
    }
    return rc;
}

int cache_invalidate(cache *c, const char *type, const char *pattern, uint64_t *out_removed,
                     bp_error *err)
{
    uint64_t per_type[CACHE_TYPE_COUNT] = {0}, total = 0;
    int first, end;
    int rc = type_range(type, &first, &end, err);
    if (rc == BP_OK) {
        rc = invalidate_types(c, first, end, pattern, per_type, err);
    }
    for (int t = 0; t < CACHE_TYPE_COUNT; t++) {
        total += per_type[t];
    }
    if (out_removed) {
        *out_removed = total;
    }
    return rc;
}

int cache_clear(cache *c, const char *type, json_t **out_report, bp_error *err)
{
    uint64_t per_type[CACHE_TYPE_COUNT] = {0}, total = 0;
    int first, end;
    int rc = type_range(type, &first, &end, err);
    json_t *report = NULL, *types = NULL;
    if (rc == BP_OK) {
        rc = invalidate_types(c, first, end, NULL, per_type, err);
    }
    if (rc != BP_OK) {
        return rc;
    }
    if (out_report) {
        report = json_object();
        types = json_object();
        for (int t = first; t < end; t++) {
            total += per_type[t];
            json_object_set_new(types, type_names[t], json_integer((json_int_t)per_type[t]));
        }
        json_object_set_new(report, "removed", json_integer((json_int_t)total));
        json_object_set_new(report, "types", types);
        *out_report = report;
    }
    return BP_OK;
}

int cache_cleanup(cache *c, json_t **out_report, bp_error *err)
{
    uint64_t removed[CACHE_TYPE_COUNT] = {0}, freed[CACHE_TYPE_COUNT] = {0};
    uint64_t total_removed = 0, total_freed = 0;
    cache_usage usage[CACHE_TYPE_COUNT];
    int64_t now = util_now_ms();
    json_t *report, *types;
    int rc = backend_required(c, err);
    for (int t = 0; t < CACHE_TYPE_COUNT && rc == BP_OK; t++) {
        bp_error e = {0};
        rc = c->backend->ops->cleanup(c->backend, (cache_type)t, now, &removed[t], &freed[t], &e);
        backend_result(c, rc, &e);
        if (rc != BP_OK && err) {
            *err = e;
        }
    }
    if (rc == BP_OK) {
        bp_error e = {0};
        rc = c->backend->ops->usage(c->backend, usage, &e);
        backend_result(c, rc, &e);
        if (rc != BP_OK && err) {
            *err = e;
        }
    }
    if (rc != BP_OK) {
        return rc;
    }
    report = json_object();
    types = json_object();
    for (int t = 0; t < CACHE_TYPE_COUNT; t++) {
        json_t *o = json_object();
        json_object_set_new(o, "evicted", json_integer((json_int_t)removed[t]));
        json_object_set_new(o, "bytes_freed", json_integer((json_int_t)freed[t]));
        json_object_set_new(o, "keys", json_integer((json_int_t)usage[t].keys));
        json_object_set_new(o, "bytes", json_integer((json_int_t)usage[t].bytes));
        json_object_set_new(types, type_names[t], o);
        total_removed += removed[t];
        total_freed += freed[t];
    }
    json_object_set_new(report, "backend", json_string(c->backend->ops->name));
    json_object_set_new(report, "evicted", json_integer((json_int_t)total_removed));
    json_object_set_new(report, "bytes_freed", json_integer((json_int_t)total_freed));
    json_object_set_new(report, "types", types);
    if (total_removed) {
        log_info("cache", "cleanup evicted=%llu bytes_freed=%llu",
                 (unsigned long long)total_removed, (unsigned long long)total_freed);
    }
    *out_report = report;
    return BP_OK;
}

/* One type's (or the totals') figures. `counts_drops` is 0 for a backend that does not count
 * evictions and expiries itself (Redis does both on its own): those are null, not a false 0. */
static json_t *stats_object(const uint64_t ctr[CACHE_COUNTER_COUNT], const cache_usage *u,
                            int counts_drops)
{
    json_t *o = json_object();
    uint64_t lookups = ctr[CACHE_CTR_HITS] + ctr[CACHE_CTR_MISSES];
    for (int k = 0; k < CACHE_COUNTER_COUNT; k++) {
        json_object_set_new(o, cache_counter_names[k], json_integer((json_int_t)ctr[k]));
    }
    json_object_set_new(o, "hit_rate",
                        json_real(lookups ? (double)ctr[CACHE_CTR_HITS] / (double)lookups : 0.0));
    if (u) {
        json_object_set_new(o, "evictions",
                            counts_drops ? json_integer((json_int_t)u->evictions) : json_null());
        json_object_set_new(o, "expired",
                            counts_drops ? json_integer((json_int_t)u->expired) : json_null());
        json_object_set_new(o, "keys", json_integer((json_int_t)u->keys));
        json_object_set_new(o, "bytes", json_integer((json_int_t)u->bytes));
    }
    return o;
}

int cache_stats(cache *c, json_t **out_stats, bp_error *err)
{
    uint64_t ctr[CACHE_TYPE_COUNT][CACHE_COUNTER_COUNT];
    uint64_t total_ctr[CACHE_COUNTER_COUNT] = {0};
    cache_usage usage[CACHE_TYPE_COUNT], total_usage = {0};
    int have_usage = 0, counts_drops = c->backend->ops->server_stats == NULL, rc;
    json_t *out, *types, *server = NULL;
    (void)err;

    for (int t = 0; t < CACHE_TYPE_COUNT; t++) {
        for (int k = 0; k < CACHE_COUNTER_COUNT; k++) {
            ctr[t][k] = atomic_load_explicit(&c->ctr[t][k], memory_order_relaxed);
        }
    }
    if (backend_usable(c)) {
        bp_error e = {0};
        rc = c->backend->ops->usage(c->backend, usage, &e);
        backend_result(c, rc, &e);
        have_usage = rc == BP_OK;
        if (have_usage && c->backend->ops->counters) {
            uint64_t totals[CACHE_TYPE_COUNT][CACHE_COUNTER_COUNT];
            rc = counters_flush(c, &totals[0][0], 1, &e);
            backend_result(c, rc, &e);
            /* The fleet's totals include ours, so ours are a floor: on a Redis that evicts
             * any key (allkeys-lru) the counters hash itself may have been evicted. */
            for (int t = 0; t < CACHE_TYPE_COUNT && rc == BP_OK; t++) {
                for (int k = 0; k < CACHE_COUNTER_COUNT; k++) {
                    ctr[t][k] = totals[t][k] > ctr[t][k] ? totals[t][k] : ctr[t][k];
                }
            }
        }
        if (have_usage && !counts_drops) {
            rc = c->backend->ops->server_stats(c->backend, &server, &e);
            backend_result(c, rc, &e);
        }
    }
    out = json_object();
    types = json_object();
    json_object_set_new(out, "backend", json_string(c->backend->ops->name));
    json_object_set_new(out, "available", json_boolean(cache_available(c)));
    if (!c->backend->ops->counters) {
        json_object_set_new(out, "max_bytes", json_integer((json_int_t)c->max_bytes));
    }
    json_object_set_new(out, "stale_factor", json_real(c->stale_factor));
    for (int t = 0; t < CACHE_TYPE_COUNT; t++) {
        json_t *o = stats_object(ctr[t], have_usage ? &usage[t] : NULL, counts_drops);
        json_object_set_new(o, "ttl_s", json_integer((json_int_t)(c->ttl_ms[t] / 1000)));
        json_object_set_new(types, type_names[t], o);
        for (int k = 0; k < CACHE_COUNTER_COUNT; k++) {
            total_ctr[k] += ctr[t][k];
        }
        if (have_usage) {
            total_usage.keys += usage[t].keys;
            total_usage.bytes += usage[t].bytes;
            total_usage.evictions += usage[t].evictions;
            total_usage.expired += usage[t].expired;
        }
    }
    json_object_set_new(out, "types", types);
    json_object_set_new(out, "totals",
                        stats_object(total_ctr, have_usage ? &total_usage : NULL, counts_drops));
    if (server) {
        json_object_set_new(out, "server", server);
    }
    *out_stats = out;
    return BP_OK;
}

int cache_inspect(cache *c, const char *type, const char *key_text, json_t **out_entry,
                  bp_error *err)
{
    sbuf key;
    cache_type t = CACHE_ODDS;
    json_t *filters, *value = NULL, *entry;
    json_error_t jerr;
    unsigned char *blob = NULL;
    size_t len = 0;
    int64_t fresh_until = 0, stale_until = 0, now = util_now_ms();
    char iso[40];
    bp_error e = {0};
    int rc = cache_type_parse(type, &t, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (!key_text) {
        return bp_err(err, BP_E_INVAL, "cache: inspect needs a key");
    }
    sb_init(&key);
    filters = json_loads(key_text, JSON_DECODE_ANY, &jerr);
    if (filters) {
        rc = key_build(c, t, filters, &key, err);
        json_decref(filters);
    } else {
        /* Not JSON: the raw key part as printed in a key (for example a hashed one). */
        sb_puts(&key, c->key_prefix);
        sb_puts(&key, type_names[t]);
        sb_putc(&key, ':');
        sb_puts(&key, key_text);
        rc = key.oom ? bp_err(err, BP_E_NOMEM, "cache: out of memory") : BP_OK;
    }
    if (rc == BP_OK) {
        rc = backend_required(c, err);
    }
    if (rc != BP_OK) {
        goto fail;
    }
    rc = c->backend->ops->get(c->backend, key.p, key.len, &blob, &len, &e);
    backend_result(c, rc, &e);
    if (rc == BP_OK) {
        rc = blob_header(blob, len, &fresh_until, &stale_until, &e);
    }
    if (rc == BP_OK && now >= stale_until) {
        rc = BP_E_NOTFOUND;
    }
    if (rc == BP_OK) {
        rc = blob_value(blob, len, &value, &e);
    }
    if (rc != BP_OK) {
        if (rc == BP_E_NOTFOUND) {
            bp_err(err, rc, "cache: no %s entry with key %s", type_names[t], key.p);
        } else if (err) {
            *err = e;
        }
        goto fail;
    }
    entry = json_object();
    json_object_set_new(entry, "type", json_string(type_names[t]));
    json_object_set_new(entry, "key", json_stringn(key.p, key.len));
    json_object_set_new(entry, "value", value);
    json_object_set_new(entry, "stale", json_boolean(now >= fresh_until));
    util_format_iso8601(fresh_until, iso, sizeof iso);
    json_object_set_new(entry, "fresh_until", json_string(iso));
    util_format_iso8601(stale_until, iso, sizeof iso);
    json_object_set_new(entry, "expires_at", json_string(iso));
    json_object_set_new(entry, "encoding",
                        json_string(blob[0] == CACHE_BLOB_ENC_ZLIB ? "zlib" : "json"));
    json_object_set_new(entry, "stored_bytes", json_integer((json_int_t)len));
    *out_entry = entry;
fail:
    free(blob);
    sb_free(&key);
    return rc;
}

/* ============================================================================================
 * Configuration and lifetime
 * ========================================================================================== */

const char *cache_backend_name(const cache *c)
{
    return c->backend->ops->name;
}

int64_t cache_ttl_ms(const cache *c, cache_type t)
{
    return (t >= 0 && t < CACHE_TYPE_COUNT) ? c->ttl_ms[t] : 0;
}

double cache_stale_factor(const cache *c)
{
    return c->stale_factor;
}

/* A TTL from the config: seconds as a number, or a duration string. */
static int parse_ttl(const json_t *v, const char *what, int64_t *out_ms, bp_error *err)
{
    if (json_is_number(v)) {
        double s = json_number_value(v);
        if (!(s > 0) || s > 10.0 * 365 * 86400) {
            return bp_err(err, BP_E_CONFIG, "%s: expected a positive number of seconds, got %g",
                          what, s);
        }
        *out_ms = (int64_t)(s * 1000.0 + 0.5);
        return BP_OK;
    }
    if (json_is_string(v)) {
        int rc = util_parse_duration_ms(json_string_value(v), out_ms, err);
        if (rc != BP_OK || *out_ms <= 0) {
            return bp_err(err, BP_E_CONFIG, "%s: '%s' is not a positive duration", what,
                          json_string_value(v));
        }
        return BP_OK;
    }
    return bp_err(err, BP_E_CONFIG, "%s: expected seconds or a duration string", what);
}

static int parse_uint(const json_t *v, const char *what, uint64_t min, uint64_t *out, bp_error *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < min) {
        return bp_err(err, BP_E_CONFIG, "%s: expected an integer >= %llu", what,
                      (unsigned long long)min);
    }
    *out = (uint64_t)json_integer_value(v);
    return BP_OK;
}

typedef struct cache_settings {
    const char *backend;
    const char *url;
    int64_t ttl_ms[CACHE_TYPE_COUNT];
    double stale_factor;
    uint64_t max_bytes;
    uint64_t compress_threshold;
    int64_t lock_ms;
} cache_settings;

static int settings_from_config(const json_t *cfg, cache_settings *s, bp_error *err)
{
    const char *k;
    json_t *v;
    if (!cfg) {
        return BP_OK;
    }
    if (!json_is_object(cfg)) {
        return bp_err(err, BP_E_CONFIG, "cache: expected an object");
    }
    json_object_foreach((json_t *)(uintptr_t)cfg, k, v)
    {
        int rc = BP_OK;
        if (strcmp(k, "backend") == 0) {
            if (!json_is_string(v)) {
                return bp_err(err, BP_E_CONFIG, "cache.backend: expected \"memory\" or \"redis\"");
            }
            s->backend = json_string_value(v);
        } else if (strcmp(k, "url") == 0) {
            if (!json_is_string(v) || !*json_string_value(v)) {
                return bp_err(err, BP_E_CONFIG, "cache.url: expected a Redis URL string");
            }
            s->url = json_string_value(v);
        } else if (strcmp(k, "ttl") == 0) {
            const char *tk;
            json_t *tv;
            if (!json_is_object(v)) {
                return bp_err(err, BP_E_CONFIG, "cache.ttl: expected an object of type: seconds");
            }
            json_object_foreach(v, tk, tv)
            {
                cache_type t = CACHE_ODDS;
                char what[96];
                if (cache_type_parse(tk, &t, NULL) != BP_OK) {
                    return bp_err(err, BP_E_CONFIG,
                                  "cache.ttl.%s: unknown cache type (known: odds, stats, "
                                  "predictions, static)",
                                  tk);
                }
                snprintf(what, sizeof what, "cache.ttl.%s", tk);
                rc = parse_ttl(tv, what, &s->ttl_ms[t], err);
                if (rc != BP_OK) {
                    return rc;
                }
            }
        } else if (strcmp(k, "stale_factor") == 0) {
            if (!json_is_number(v) || !(json_number_value(v) >= 1.0) ||
                json_number_value(v) > 1000.0) {
                return bp_err(err, BP_E_CONFIG,
                              "cache.stale_factor: expected a number in [1, 1000]");
            }
            s->stale_factor = json_number_value(v);
        } else if (strcmp(k, "max_bytes") == 0) {
            rc = parse_uint(v, "cache.max_bytes", 1, &s->max_bytes, err);
        } else if (strcmp(k, "compress_threshold") == 0) {
            rc = parse_uint(v, "cache.compress_threshold", 0, &s->compress_threshold, err);
        } else if (strcmp(k, "lock_ms") == 0) {
            uint64_t ms = 0;
            rc = parse_uint(v, "cache.lock_ms", 1, &ms, err);
            s->lock_ms = (int64_t)ms;
        } else {
            return bp_err(err, BP_E_CONFIG,
                          "cache.%s: unknown key (known: backend, url, ttl, stale_factor, "
                          "max_bytes, compress_threshold, lock_ms)",
                          k);
        }
        if (rc != BP_OK) {
            return rc;
        }
    }
    return BP_OK;
}

static int settings_from_env(cache_settings *s, bp_error *err)
{
    const char *v;
    for (int t = 0; t < CACHE_TYPE_COUNT; t++) {
        v = getenv(type_env[t]);
        if (v && *v) {
            int64_t ms = 0;
            if (util_parse_duration_ms(v, &ms, NULL) != BP_OK || ms <= 0) {
                return bp_err(err, BP_E_CONFIG, "%s: '%s' is not a positive duration", type_env[t],
                              v);
            }
            s->ttl_ms[t] = ms;
        }
    }
    v = getenv("BETPIPE_CACHE_URL");
    if (v && *v) {
        s->url = v;
    }
    v = getenv("BETPIPE_CACHE_BACKEND");
    if (v && *v) {
        s->backend = v;
    }
    return BP_OK;
}

int cache_open(const json_t *cfg, const char *prefix, cache **out, bp_error *err)
{
    cache_settings s;
    cache *c = NULL;
    int rc;

    memset(&s, 0, sizeof s);
    memcpy(s.ttl_ms, type_default_ttl_ms, sizeof s.ttl_ms);
    s.stale_factor = CACHE_DEFAULT_STALE_FACTOR;
    s.max_bytes = CACHE_DEFAULT_MAX_BYTES;
    s.compress_threshold = CACHE_DEFAULT_COMPRESS_THRESHOLD;
    s.lock_ms = CACHE_DEFAULT_LOCK_MS;
    rc = settings_from_config(cfg, &s, err);
    if (rc == BP_OK) {
        rc = settings_from_env(&s, err);
    }
    if (rc != BP_OK) {
        return rc;
    }
    if (!s.backend) {
        s.backend = s.url ? "redis" : "memory";
    }
    if (strcmp(s.backend, "memory") != 0 && strcmp(s.backend, "redis") != 0) {
        return bp_err(err, BP_E_CONFIG, "cache.backend: unknown backend '%s' (memory or redis)",
                      s.backend);
    }
    if (strcmp(s.backend, "redis") == 0 && !s.url) {
        return bp_err(err, BP_E_CONFIG,
                      "cache.url: the redis backend needs a URL (cache.url or BETPIPE_CACHE_URL)");
    }
    if (!prefix) {
        prefix = CACHE_DEFAULT_PREFIX;
    }
    if (!*prefix) {
        return bp_err(err, BP_E_CONFIG, "cache: the key prefix must not be empty");
    }

    c = calloc(1, sizeof *c);
    if (!c) {
        return bp_err(err, BP_E_NOMEM, "cache: out of memory");
    }
    pthread_mutex_init(&c->flush_lock, NULL);
    pthread_mutex_init(&c->health_lock, NULL);
    pthread_mutex_init(&c->flight_lock, NULL);
    memcpy(c->ttl_ms, s.ttl_ms, sizeof c->ttl_ms);
    c->stale_factor = s.stale_factor;
    c->max_bytes = s.max_bytes;
    c->compress_threshold = (size_t)s.compress_threshold;
    c->lock_ms = s.lock_ms;
    c->prefix = util_strdup(prefix);
    c->key_prefix = util_asprintf("%s:cache:", prefix);
    c->lock_prefix = util_asprintf("%s:cache-lock:", prefix);
    c->key_glob_prefix = c->key_prefix ? glob_escape(c->key_prefix) : NULL;
    c->url = util_strdup(s.url);
    if (!c->prefix || !c->key_prefix || !c->lock_prefix || !c->key_glob_prefix ||
        (s.url && !c->url)) {
        rc = bp_err(err, BP_E_NOMEM, "cache: out of memory");
        goto fail;
    }
    if (strcmp(s.backend, "memory") == 0) {
        rc = cache_memory_open(s.max_bytes, &c->backend, err);
    } else {
        rc = cache_redis_open(s.url, prefix, &c->backend, err);
    }
    if (rc != BP_OK) {
        goto fail;
    }
    atomic_store(&c->next_flush_ns, util_mono_ns() + CACHE_COUNTER_FLUSH_NS);
    if (c->backend->ops->counters) {
        flusher_start(c);
    }
    log_debug("cache",
              "opened backend=%s ttl_odds_s=%lld ttl_stats_s=%lld "
              "ttl_predictions_s=%lld ttl_static_s=%lld stale_factor=%g",
              c->backend->ops->name, (long long)(c->ttl_ms[CACHE_ODDS] / 1000),
              (long long)(c->ttl_ms[CACHE_STATS] / 1000),
              (long long)(c->ttl_ms[CACHE_PREDICTIONS] / 1000),
              (long long)(c->ttl_ms[CACHE_STATIC] / 1000), c->stale_factor);
    *out = c;
    return BP_OK;
fail:
    cache_close(c);
    return rc;
}

void cache_close(cache *c)
{
    if (!c) {
        return;
    }
    flusher_stop(c);
    if (c->backend) {
        if (c->backend->ops->counters && backend_usable(c)) {
            bp_error e = {0};
            counters_flush(c, NULL, 1, &e);
        }
        c->backend->ops->close(c->backend);
    }
    for (int i = 0; i < CACHE_FLIGHT_BUCKETS; i++) {
        /* flights only exist while a get_or_compute runs: none may be left at close */
        c->flights[i] = NULL;
    }
    pthread_mutex_destroy(&c->flush_lock);
    pthread_mutex_destroy(&c->health_lock);
    pthread_mutex_destroy(&c->flight_lock);
    free(c->prefix);
    free(c->key_prefix);
    free(c->lock_prefix);
    free(c->key_glob_prefix);
    free(c->url);
    free(c);
}
