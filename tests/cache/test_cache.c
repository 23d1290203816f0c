/*
 * test_cache.c - the typed cache with its embedded memory backend: TTLs per type under an
 * injected clock, configuration and environment, canonical and hashed keys, compression,
 * stale fallback, single-flight, the LRU byte bound under concurrent load, invalidation,
 * cleanup, statistics and the CLI helpers.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "cache.h"
#include "support.h"
#include "util.h"

/* ---- an injected wall clock ---------------------------------------------------------------- */

static _Atomic int64_t fake_ms;

static int64_t fake_clock(void)
{
    return atomic_load(&fake_ms);
}

static void clock_at(int64_t ms)
{
    atomic_store(&fake_ms, ms);
    util_set_clock(fake_clock);
}

static void clock_advance(int64_t ms)
{
    atomic_fetch_add(&fake_ms, ms);
}

#define T0 1767225600000LL /* 2026-01-01T00:00:00Z */

static cache *open_mem(const char *cfg_text)
{
    json_error_t jerr;
    json_t *cfg = cfg_text ? json_loads(cfg_text, 0, &jerr) : NULL;
    cache *c = NULL;
    bp_error err = {0};
    cr_assert(!cfg_text || cfg, "bad test config: %s", jerr.text);
    cr_assert_eq(cache_open(cfg, "t", &c, &err), BP_OK, "%s", err.msg);
    json_decref(cfg);
    return c;
}

static json_t *J(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    cr_assert(v, "bad test JSON %s: %s", text, jerr.text);
    return v;
}

static json_t *stats_of(cache *c, const char *type)
{
    json_t *st = NULL;
    cr_assert_eq(cache_stats(c, &st, NULL), BP_OK);
    json_t *o =
        type ? json_object_get(json_object_get(st, "types"), type) : json_object_get(st, "totals");
    cr_assert(o);
    json_incref(o);
    json_decref(st);
    return o;
}

static long long stat_int(cache *c, const char *type, const char *name)
{
    json_t *o = stats_of(c, type);
    json_t *v = json_object_get(o, name);
    cr_assert(json_is_integer(v), "stat %s.%s missing", type ? type : "totals", name);
    long long n = (long long)json_integer_value(v);
    json_decref(o);
    return n;
}

/* ---- types and configuration --------------------------------------------------------------- */

Test(cache_config, defaults_are_the_marabet_ttls)
{
    cache *c = open_mem(NULL);
    cr_assert_str_eq(cache_backend_name(c), "memory");
    cr_assert_eq(cache_ttl_ms(c, CACHE_ODDS), 300000);
    cr_assert_eq(cache_ttl_ms(c, CACHE_STATS), 1800000);
    cr_assert_eq(cache_ttl_ms(c, CACHE_PREDICTIONS), 600000);
    cr_assert_eq(cache_ttl_ms(c, CACHE_STATIC), 86400000);
    cr_assert_float_eq(cache_stale_factor(c), 6.0, 1e-9);
    cache_close(c);
}

Test(cache_config, config_then_environment_override)
{
    cache *c = open_mem("{\"ttl\": {\"odds\": 60, \"static\": \"2h\"}, \"stale_factor\": 3}");
    cr_assert_eq(cache_ttl_ms(c, CACHE_ODDS), 60000);
    cr_assert_eq(cache_ttl_ms(c, CACHE_STATS), 1800000);
    cr_assert_eq(cache_ttl_ms(c, CACHE_STATIC), 7200000);
    cr_assert_float_eq(cache_stale_factor(c), 3.0, 1e-9);
    cache_close(c);

    setenv("BETPIPE_CACHE_TTL_ODDS", "90", 1);
    setenv("BETPIPE_CACHE_TTL_PREDICTIONS", "15m", 1);
    c = open_mem("{\"ttl\": {\"odds\": 60}}");
    cr_assert_eq(cache_ttl_ms(c, CACHE_ODDS), 90000, "the environment wins over the file");
    cr_assert_eq(cache_ttl_ms(c, CACHE_PREDICTIONS), 900000);
    cache_close(c);

    setenv("BETPIPE_CACHE_TTL_STATS", "soon", 1);
    cache *bad = NULL;
    bp_error err = {0};
    cr_assert_eq(cache_open(NULL, "t", &bad, &err), BP_E_CONFIG);
    cr_assert(strstr(err.msg, "BETPIPE_CACHE_TTL_STATS") && strstr(err.msg, "soon"), "%s", err.msg);
    unsetenv("BETPIPE_CACHE_TTL_STATS");

    setenv("BETPIPE_CACHE_BACKEND", "memcached", 1);
    cr_assert_eq(cache_open(NULL, "t", &bad, &err), BP_E_CONFIG);
    cr_assert(strstr(err.msg, "memcached"), "%s", err.msg);
    setenv("BETPIPE_CACHE_BACKEND", "redis", 1);
    cr_assert_eq(cache_open(NULL, "t", &bad, &err), BP_E_CONFIG);
    cr_assert(strstr(err.msg, "cache.url"), "redis without a URL: %s", err.msg);
}

Test(cache_config, unknown_keys_and_bad_values_are_named)
{
    static const struct {
        const char *cfg;
        const char *needle;
    } cases[] = {
        {"{\"backnd\": \"memory\"}", "cache.backnd"},
        {"{\"ttl\": {\"weather\": 10}}", "cache.ttl.weather"},
        {"{\"ttl\": {\"odds\": -5}}", "cache.ttl.odds"},
        {"{\"ttl\": {\"odds\": \"later\"}}", "cache.ttl.odds"},
        {"{\"ttl\": 300}", "cache.ttl"},
        {"{\"stale_factor\": 0.5}", "cache.stale_factor"},
        {"{\"max_bytes\": \"lots\"}", "cache.max_bytes"},
        {"{\"max_bytes\": 100}", "cache.max_bytes"},
        {"{\"compress_threshold\": -1}", "cache.compress_threshold"},
        {"{\"backend\": \"disk\"}", "disk"},
        {"[1, 2]", "expected an object"},
    };
    for (size_t i = 0; i < BP_ARRAY_LEN(cases); i++) {
        json_t *cfg = J(cases[i].cfg);
        cache *c = NULL;
        bp_error err = {0};
        cr_assert_eq(cache_open(cfg, "t", &c, &err), BP_E_CONFIG, "accepted %s", cases[i].cfg);
        cr_assert(strstr(err.msg, cases[i].needle), "%s -> '%s' should name %s", cases[i].cfg,
                  err.msg, cases[i].needle);
        json_decref(cfg);
    }
}

Test(cache_config, unknown_type_is_an_error)
{
    cache *c = open_mem(NULL);
    json_t *v = J("1"), *out = NULL;
    bp_error err = {0};
    cr_assert_eq(cache_set(c, "weather", NULL, v, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "weather") && strstr(err.msg, "odds"), "%s", err.msg);
    cr_assert_eq(cache_get(c, "weather", NULL, &out, &err), BP_E_INVAL);
    cr_assert_eq(cache_clear(c, "weather", NULL, &err), BP_E_INVAL);
    json_decref(v);
    cache_close(c);
}

/* ---- TTLs ---------------------------------------------------------------------------------- */

Test(cache_ttl, each_type_expires_after_its_own_ttl)
{
    static const struct {
        const char *type;
        int64_t ttl_ms;
    } types[] = {
        {"odds", 300000}, {"stats", 1800000}, {"predictions", 600000}, {"static", 86400000}};
    clock_at(T0);
    cache *c = open_mem(NULL);
    json_t *f = J("{\"match\": 42}"), *v = J("{\"home\": 1.95}"), *out = NULL;
    for (size_t i = 0; i < BP_ARRAY_LEN(types); i++) {
        cr_assert_eq(cache_set(c, types[i].type, f, v, NULL), BP_OK);
    }
    for (size_t i = 0; i < BP_ARRAY_LEN(types); i++) {
        /* every type is fresh one millisecond before its own TTL ... */
        clock_at(T0 + types[i].ttl_ms - 1);
        for (size_t j = 0; j < BP_ARRAY_LEN(types); j++) {
            int want = types[j].ttl_ms > types[i].ttl_ms - 1 ? BP_OK : BP_E_NOTFOUND;
            int rc = cache_get(c, types[j].type, f, &out, NULL);
            cr_assert_eq(rc, want, "%s at %s's ttl-1: rc %d", types[j].type, types[i].type, rc);
            if (rc == BP_OK) {
                cr_assert(json_equal(out, v));
                json_decref(out);
            }
        }
        /* ... and a miss at it */
        clock_at(T0 + types[i].ttl_ms);
        cr_assert_eq(cache_get(c, types[i].type, f, &out, NULL), BP_E_NOTFOUND, "%s",
                     types[i].type);
    }
    json_decref(f);
    json_decref(v);
    cache_close(c);
}

Test(cache_ttl, overridden_ttl_is_used)
{
    clock_at(T0);
    setenv("BETPIPE_CACHE_TTL_ODDS", "10", 1);
    cache *c = open_mem(NULL);
    json_t *v = J("[1,2,3]"), *out = NULL;
    cr_assert_eq(cache_set(c, "odds", NULL, v, NULL), BP_OK);
    clock_advance(9999);
    cr_assert_eq(cache_get(c, "odds", NULL, &out, NULL), BP_OK);
    json_decref(out);
    clock_advance(1);
    cr_assert_eq(cache_get(c, "odds", NULL, &out, NULL), BP_E_NOTFOUND);
    json_decref(v);
    cache_close(c);
}

/* ---- keys ---------------------------------------------------------------------------------- */

Test(cache_keys, same_filters_in_any_order_hit_the_same_entry)
{
    cache *c = open_mem(NULL);
    json_t *a = J("{\"league\": \"E0\", \"season\": 2024, \"books\": [\"b365\", {\"z\": 1, "
                  "\"a\": 2.0}]}");
    json_t *b = J("{\"books\": [\"b365\", {\"a\": 2, \"z\": 1}], \"season\": 2024.0, "
                  "\"league\": \"E0\"}");
    json_t *other = J("{\"books\": [{\"a\": 2, \"z\": 1}, \"b365\"], \"season\": 2024, "
                      "\"league\": \"E0\"}");
    json_t *v = J("{\"p\": 0.5}"), *out = NULL;
    char *ka = NULL, *kb = NULL, *canon = NULL;

    cr_assert_eq(cache_key(c, "stats", a, &ka, NULL), BP_OK);
    cr_assert_eq(cache_key(c, "stats", b, &kb, NULL), BP_OK);
    cr_assert_str_eq(ka, kb);
    cr_assert_str_eq(ka, "t:cache:stats:{\"books\":[\"b365\",{\"a\":2,\"z\":1}],\"league\":\"E0\","
                         "\"season\":2024}");
    cr_assert_eq(cache_canonical(NULL, &canon, NULL), BP_OK);
    cr_assert_str_eq(canon, "{}");
    free(canon);
    json_t *odd = J("{\"s\": \"a\\\"b\\n\\u0001\", \"r\": 0.1, \"n\": null, \"t\": true}");
    cr_assert_eq(cache_canonical(odd, &canon, NULL), BP_OK);
    cr_assert_str_eq(canon, "{\"n\":null,\"r\":0.1,\"s\":\"a\\\"b\\n\\u0001\",\"t\":true}");
    free(canon);
    json_decref(odd);

    cr_assert_eq(cache_set(c, "stats", a, v, NULL), BP_OK);
    cr_assert_eq(cache_get(c, "stats", b, &out, NULL), BP_OK, "reordered filters must hit");
    cr_assert(json_equal(out, v));
    json_decref(out);
    cr_assert_eq(cache_get(c, "stats", other, &out, NULL), BP_E_NOTFOUND,
                 "array order is part of the question");
    cr_assert_eq(cache_get(c, "odds", a, &out, NULL), BP_E_NOTFOUND, "types are separate");
    free(ka);
    free(kb);
    json_decref(a);
    json_decref(b);
    json_decref(other);
    json_decref(v);
    cache_close(c);
}

Test(cache_keys, long_filters_are_hashed_keeping_a_readable_head)
{
    cache *c = open_mem(NULL);
    char big1[600], big2[600];
    /* same first 200 bytes, different tails */
    memset(big1, 'x', sizeof big1);
    memcpy(big2, big1, sizeof big2);
    big1[sizeof big1 - 1] = big2[sizeof big2 - 1] = '\0';
    big2[400] = 'y';
    json_t *f1 = json_pack("{s:s, s:s}", "league", "E0", "teams", big1);
    json_t *f2 = json_pack("{s:s, s:s}", "league", "E0", "teams", big2);
    json_t *v1 = J("1"), *v2 = J("2"), *out = NULL;
    char *k1 = NULL, *k2 = NULL;
    cr_assert_eq(cache_key(c, "static", f1, &k1, NULL), BP_OK);
    cr_assert_eq(cache_key(c, "static", f2, &k2, NULL), BP_OK);
    cr_assert_str_neq(k1, k2);
    const char *part = k1 + strlen("t:cache:static:");
    cr_assert_eq(strlen(part), CACHE_KEY_HEAD_BYTES + 1 + 40, "%s", part);
    cr_assert(util_str_starts_with(part, "{\"league\":\"E0\",\"teams\":\"xxx"), "%s", part);
    cr_assert_eq(part[CACHE_KEY_HEAD_BYTES], '~');

    cr_assert_eq(cache_set(c, "static", f1, v1, NULL), BP_OK);
    cr_assert_eq(cache_set(c, "static", f2, v2, NULL), BP_OK);
    cr_assert_eq(cache_get(c, "static", f1, &out, NULL), BP_OK);
    cr_assert(json_equal(out, v1));
    json_decref(out);
    cr_assert_eq(cache_get(c, "static", f2, &out, NULL), BP_OK);
    cr_assert(json_equal(out, v2));
    json_decref(out);

    /* the CLI can address a hashed entry by the key part it printed */
    json_t *entry = NULL;
    cr_assert_eq(cache_inspect(c, "static", part, &entry, NULL), BP_OK);
    cr_assert(json_equal(json_object_get(entry, "value"), v1));
    json_decref(entry);

    /* a multi-byte character straddling the cut is not split */
    char accents[201];
    for (int i = 0; i < 100; i++) {
        memcpy(accents + 2 * i, "\xc3\xa9", 2); /* é */
    }
    accents[200] = '\0';
    json_t *f3 = json_pack("{s:s}", "t", accents);
    char *k3 = NULL;
    cr_assert_eq(cache_key(c, "static", f3, &k3, NULL), BP_OK);
    const char *p3 = k3 + strlen("t:cache:static:");
    const char *tilde = strchr(p3, '~');
    cr_assert(tilde);
    cr_assert_eq(((unsigned char)tilde[-1] & 0xC0) != 0xC0, 1, "cut inside a UTF-8 sequence");
    json_t *head = json_stringn(p3, (size_t)(tilde - p3));
    cr_assert_not_null(head, "the readable head must stay valid UTF-8");
    json_decref(head);
    free(k1);
    free(k2);
    free(k3);
    json_decref(f1);
    json_decref(f2);
    json_decref(f3);
    json_decref(v1);
    json_decref(v2);
    cache_close(c);
}

Test(cache_keys, sha1_matches_the_standard_vectors)
{
    static const struct {
        const char *in;
        const char *hex;
    } v[] = {
        {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
    };
    for (size_t i = 0; i < BP_ARRAY_LEN(v); i++) {
        unsigned char d[20];
        char hex[41];
        cache_sha1(v[i].in, strlen(v[i].in), d);
        for (int k = 0; k < 20; k++) {
            snprintf(hex + 2 * k, 3, "%02x", d[k]);
        }
        cr_assert_str_eq(hex, v[i].hex, "sha1(%s)", v[i].in);
    }
}

Test(cache_keys, glob_follows_redis_syntax)
{
    static const struct {
        const char *pat, *str;
        int want;
    } cases[] = {
        {"*", "", 1},
        {"*", "anything", 1},
        {"a*c", "abbbc", 1},
        {"a*c", "abbbd", 0},
        {"a?c", "abc", 1},
        {"a?c", "ac", 0},
        {"[abc]x", "bx", 1},
        {"[^abc]x", "bx", 0},
        {"[a-c]x", "cx", 1},
        {"[c-a]x", "bx", 1},
        {"\\*x", "*x", 1},
        {"\\*x", "ax", 0},
        {"\\[1\\]", "[1]", 1},
        {"*\"E0\"*", "{\"league\":\"E0\",\"m\":1}", 1},
        {"*a*b*c*", "xaybzc", 1},
        {"*a*b*c*", "xcybza", 0},
    };
    for (size_t i = 0; i < BP_ARRAY_LEN(cases); i++) {
        cr_assert_eq(cache_glob_match(cases[i].pat, cases[i].str, strlen(cases[i].str)),
                     cases[i].want, "'%s' vs '%s'", cases[i].pat, cases[i].str);
    }
}

/* ---- values -------------------------------------------------------------------------------- */

Test(cache_values, compression_round_trip)
{
    cache *c = open_mem("{\"compress_threshold\": 512}");
    json_t *big = json_array(), *small = J("{\"home\": 2.1, \"away\": 3.4}"), *out = NULL;
    json_t *entry = NULL;
    for (int i = 0; i < 500; i++) {
        json_array_append_new(big, json_pack("{s:i, s:s, s:f}", "match", i, "book", "bet365",
                                             "price", 1.5 + i / 100.0));
    }
    char *text = json_dumps(big, JSON_COMPACT);
    size_t raw = strlen(text);
    free(text);

    json_t *all = J("{\"all\":1}"), *m1 = J("{\"m\":1}");
    cr_assert_eq(cache_set(c, "odds", all, big, NULL), BP_OK);
    cr_assert_eq(cache_get(c, "odds", all, &out, NULL), BP_OK);
    cr_assert(json_equal(out, big), "compressed value must read back identical");
    json_decref(out);
    cr_assert_eq(cache_inspect(c, "odds", "{\"all\":1}", &entry, NULL), BP_OK);
    cr_assert_str_eq(json_string_value(json_object_get(entry, "encoding")), "zlib");
    long long stored = (long long)json_integer_value(json_object_get(entry, "stored_bytes"));
    cr_assert_lt(stored, (long long)raw / 3, "stored %lld of %zu", stored, raw);
    json_decref(entry);

    cr_assert_eq(cache_set(c, "odds", m1, small, NULL), BP_OK);
    cr_assert_eq(cache_inspect(c, "odds", "{\"m\":1}", &entry, NULL), BP_OK);
    cr_assert_str_eq(json_string_value(json_object_get(entry, "encoding")), "json");
    cr_assert(json_equal(json_object_get(entry, "value"), small));
    json_decref(entry);
    cache_close(c);

    /* threshold 0: never compress */
    c = open_mem("{\"compress_threshold\": 0}");
    cr_assert_eq(cache_set(c, "odds", NULL, big, NULL), BP_OK);
    cr_assert_eq(cache_inspect(c, "odds", "{}", &entry, NULL), BP_OK);
    cr_assert_str_eq(json_string_value(json_object_get(entry, "encoding")), "json");
    json_decref(entry);
    cache_close(c);
    json_decref(all);
    json_decref(m1);
    json_decref(big);
    json_decref(small);
}

Test(cache_values, scalars_and_batches)
{
    cache *c = open_mem(NULL);
    json_t *f[4], *v[4], *out[4];
    for (int i = 0; i < 4; i++) {
        f[i] = json_pack("{s:i}", "match", i);
    }
    v[0] = J("\"text\"");
    v[1] = J("3.25");
    v[2] = J("null");
    v[3] = J("[true, false]");
    cr_assert_eq(
        cache_mset(c, "predictions", (const json_t *const *)f, (const json_t *const *)v, 3, NULL),
        BP_OK);
    cr_assert_eq(cache_mget(c, "predictions", (const json_t *const *)f, 4, out, NULL), BP_OK);
    for (int i = 0; i < 3; i++) {
        cr_assert(out[i] && json_equal(out[i], v[i]), "item %d", i);
        json_decref(out[i]);
    }
    cr_assert_null(out[3], "never set: a miss");
    cr_assert_eq(stat_int(c, "predictions", "hits"), 3);
    cr_assert_eq(stat_int(c, "predictions", "misses"), 1);
    cr_assert_eq(stat_int(c, "predictions", "sets"), 3);

    cr_assert_eq(cache_del(c, "predictions", f[0], NULL), BP_OK);
    cr_assert_eq(cache_get(c, "predictions", f[0], &out[0], NULL), BP_E_NOTFOUND);
    cr_assert_eq(cache_del(c, "predictions", f[0], NULL), BP_OK, "deleting twice is fine");
    for (int i = 0; i < 4; i++) {
        json_decref(f[i]);
        json_decref(v[i]);
    }
    cache_close(c);
}

Test(cache_values, callers_own_what_they_get)
{
    cache *c = open_mem(NULL);
    json_t *v = J("{\"home\": 1.5, \"books\": [\"a\", \"b\"]}"), *out = NULL, *again = NULL;
    cr_assert_eq(cache_set(c, "odds", NULL, v, NULL), BP_OK);
    /* the caller may change both the value it stored and the value it got back */
    json_object_set_new(v, "home", json_real(9.9));
    cr_assert_eq(cache_get(c, "odds", NULL, &out, NULL), BP_OK);
    json_object_set_new(out, "mutated", json_true());
    json_array_clear(json_object_get(out, "books"));
    cr_assert_eq(cache_get(c, "odds", NULL, &again, NULL), BP_OK);
    json_t *want = J("{\"home\": 1.5, \"books\": [\"a\", \"b\"]}");
    cr_assert(json_equal(again, want), "the cached value must not change behind the cache");
    json_decref(want);
    json_decref(again);
    json_decref(out);
    json_decref(v);
    cache_close(c);
}

/* ---- cache-aside ---------------------------------------------------------------------------- */

typedef struct compute_ctx {
    _Atomic int calls;
    int fail;            /* return BP_E_UNAVAILABLE */
    int wait_for_others; /* block until this many other callers wait on this compute */
    cache *c;
    const char *type;
    const json_t *filters;
    json_t *value;
} compute_ctx;

static bool others_waiting(void *ud)
{
    compute_ctx *cx = ud;
    return cache_flight_waiters(cx->c, cx->type, cx->filters) >= cx->wait_for_others;
}

static int compute(void *ud, json_t **out_value, bp_error *err)
{
    compute_ctx *cx = ud;
    atomic_fetch_add(&cx->calls, 1);
    if (cx->wait_for_others) {
        /* Without single-flight nobody would ever wait here, and every caller would compute. */
        if (!bpt_wait_for(others_waiting, cx, 3000)) {
            return bp_err(err, BP_E_TIMEOUT, "the other callers never waited on this compute");
        }
    }
    if (cx->fail) {
        return bp_err(err, BP_E_UNAVAILABLE, "the odds API is down");
    }
    *out_value = json_deep_copy(cx->value);
    return BP_OK;
}

Test(cache_aside, computes_on_miss_then_hits)
{
    clock_at(T0);
    cache *c = open_mem(NULL);
    compute_ctx cx = {.value = J("{\"p_home\": 0.41}")};
    json_t *f = J("{\"match\": 7, \"model\": \"dixon_coles\"}"), *out = NULL;
    int stale = -1;
    cr_assert_eq(cache_get_or_compute(c, "predictions", f, compute, &cx, &out, &stale, NULL),
                 BP_OK);
    cr_assert(json_equal(out, cx.value));
    cr_assert_eq(stale, 0);
    json_decref(out);
    cr_assert_eq(cache_get_or_compute(c, "predictions", f, compute, &cx, &out, &stale, NULL),
                 BP_OK);
    json_decref(out);
    cr_assert_eq(atomic_load(&cx.calls), 1, "the second call must hit");
    cr_assert_eq(stat_int(c, "predictions", "hits"), 1);
    cr_assert_eq(stat_int(c, "predictions", "misses"), 1);

    /* compute failing with nothing stale: the caller sees compute's own error */
    compute_ctx failing = {.fail = 1};
    bp_error err = {0};
    json_t *g = J("{\"match\": 8}");
    cr_assert_eq(cache_get_or_compute(c, "predictions", g, compute, &failing, &out, &stale, &err),
                 BP_E_UNAVAILABLE);
    cr_assert(strstr(err.msg, "odds API is down"), "%s", err.msg);
    json_decref(g);
    json_decref(f);
    json_decref(cx.value);
    cache_close(c);
}

Test(cache_aside, stale_fallback_until_the_stale_limit)
{
    clock_at(T0);
    cache *c = open_mem(NULL); /* odds: ttl 300 s, stale limit 6 x 300 s */
    compute_ctx ok = {.value = J("{\"home\": 2.0}")};
    compute_ctx down = {.fail = 1};
    json_t *f = J("{\"match\": 1}"), *out = NULL;
    int stale = -1;
    bp_error err = {0};

    cr_assert_eq(cache_get_or_compute(c, "odds", f, compute, &ok, &out, &stale, NULL), BP_OK);
    json_decref(out);

    clock_advance(301 * 1000); /* past the TTL: plain get misses ... */
    cr_assert_eq(cache_get(c, "odds", f, &out, NULL), BP_E_NOTFOUND);
    /* ... and a failing compute falls back to the stale value, marked stale */
    cr_assert_eq(cache_get_or_compute(c, "odds", f, compute, &down, &out, &stale, &err), BP_OK,
                 "%s", err.msg);
    cr_assert_eq(stale, 1);
    cr_assert(json_equal(out, ok.value));
    json_decref(out);
    cr_assert_eq(stat_int(c, "odds", "stale_serves"), 1);

    /* a working compute replaces the stale entry with a fresh one */
    json_decref(ok.value);
    ok.value = J("{\"home\": 2.2}");
    cr_assert_eq(cache_get_or_compute(c, "odds", f, compute, &ok, &out, &stale, NULL), BP_OK);
    cr_assert_eq(stale, 0);
    cr_assert(json_equal(out, ok.value));
    json_decref(out);

    /* past 6 x TTL nothing is left to fall back on */
    clock_advance(6 * 300 * 1000);
    cr_assert_eq(cache_get_or_compute(c, "odds", f, compute, &down, &out, &stale, &err),
                 BP_E_UNAVAILABLE);
    cr_assert_eq(stat_int(c, "odds", "stale_serves"), 1);
    json_decref(f);
    json_decref(ok.value);
    cache_close(c);
}

typedef struct flight_arg {
    cache *c;
    compute_ctx *cx;
    json_t *filters;
    json_t *got;
    int stale;
    int rc;
} flight_arg;

static void *flight_thread(void *p)
{
    flight_arg *a = p;
    a->rc =
        cache_get_or_compute(a->c, "stats", a->filters, compute, a->cx, &a->got, &a->stale, NULL);
    return NULL;
}

static void run_flight(int fail, int with_stale)
{
    enum { N = 12 };
    clock_at(T0);
    cache *c = open_mem(NULL);
    json_t *value = J("{\"form\": \"WWDLW\"}");
    json_t *f = J("{\"team\": \"Arsenal\", \"last\": 6}");
    compute_ctx cx = {.fail = fail,
                      .wait_for_others = N - 1,
                      .c = c,
                      .type = "stats",
                      .filters = f,
                      .value = value};
    flight_arg args[N];
    pthread_t th[N];
    if (with_stale) {
        json_t *old = J("{\"form\": \"LLLLL\"}");
        cr_assert_eq(cache_set(c, "stats", f, old, NULL), BP_OK);
        json_decref(old);
        clock_advance(1801 * 1000);
    }
    for (int i = 0; i < N; i++) {
        args[i] = (flight_arg){.c = c, .cx = &cx, .filters = f};
        cr_assert_eq(pthread_create(&th[i], NULL, flight_thread, &args[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
    }
    cr_assert_eq(atomic_load(&cx.calls), 1, "compute ran %d times for %d concurrent misses",
                 atomic_load(&cx.calls), N);
    for (int i = 0; i < N; i++) {
        if (fail && !with_stale) {
            cr_assert_eq(args[i].rc, BP_E_UNAVAILABLE, "caller %d", i);
            continue;
        }
        cr_assert_eq(args[i].rc, BP_OK, "caller %d", i);
        cr_assert_eq(args[i].stale, fail, "caller %d", i);
        if (!fail) {
            cr_assert(json_equal(args[i].got, value), "caller %d got another value", i);
        }
        json_decref(args[i].got);
    }
    if (fail && with_stale) {
        cr_assert_eq(stat_int(c, "stats", "stale_serves"), N);
    }
    cr_assert_eq(stat_int(c, "stats", "misses"), N);
    json_decref(f);
    json_decref(value);
    cache_close(c);
}

Test(cache_aside, single_flight_computes_once)
{
    run_flight(0, 0);
}

Test(cache_aside, single_flight_shares_a_failure)
{
    run_flight(1, 0);
}

Test(cache_aside, single_flight_shares_the_stale_fallback)
{
    run_flight(1, 1);
}

/* ---- the byte bound ----------------------------------------------------------------------- */

Test(cache_lru, least_recently_used_goes_first)
{
    cache *c = open_mem("{\"max_bytes\": 65536, \"compress_threshold\": 0}");
    json_t *keep = J("{\"k\": \"keep\"}"), *lost = J("{\"k\": \"lost\"}"), *out = NULL;
    json_t *v = json_pack("{s:s}", "pad", "0123456789012345678901234567890123456789");
    cr_assert_eq(cache_set(c, "static", lost, v, NULL), BP_OK);
    cr_assert_eq(cache_set(c, "static", keep, v, NULL), BP_OK);
    for (int i = 0; i < 5000; i++) {
        json_t *f = json_pack("{s:i}", "i", i);
        cr_assert_eq(cache_set(c, "static", f, v, NULL), BP_OK);
        json_decref(f);
        cr_assert_eq(cache_get(c, "static", keep, &out, NULL), BP_OK,
                     "a key used after every insert must stay (insert %d)", i);
        json_decref(out);
    }
    cr_assert_eq(cache_get(c, "static", lost, &out, NULL), BP_E_NOTFOUND,
                 "the untouched oldest key must be evicted");
    cr_assert_leq(stat_int(c, NULL, "bytes"), 65536);
    cr_assert_gt(stat_int(c, "static", "evictions"), 4000);

    /* a value larger than a shard's share is refused with a clear message */
    json_t *huge = json_array();
    for (int i = 0; i < 2000; i++) {
        json_array_append_new(huge, json_integer(i * 7919));
    }
    bp_error err = {0};
    cr_assert_eq(cache_set(c, "static", NULL, huge, &err), BP_E_LIMIT);
    cr_assert(strstr(err.msg, "max_bytes"), "%s", err.msg);
    json_decref(huge);
    json_decref(keep);
    json_decref(lost);
    json_decref(v);
    cache_close(c);
}

#define LOAD_MAX_BYTES (256 * 1024)

typedef struct load_arg {
    cache *c;
    int seed;
    _Atomic int *stop;
} load_arg;

static void *load_thread(void *p)
{
    load_arg *a = p;
    static const char *const types[] = {"odds", "stats", "predictions", "static"};
    char pad[2100];
    uint64_t x = (uint64_t)a->seed * 2654435761u + 1;
    memset(pad, 'p', sizeof pad);
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int key = (int)(x % 4000), len = (int)((x >> 20) % 2000) + 10;
        json_t *f = json_pack("{s:i}", "k", key), *out = NULL;
        const char *type = types[(x >> 40) % 4];
        if ((x >> 8) % 3) {
            pad[len] = '\0';
            json_t *v = json_pack("{s:s, s:i}", "pad", pad, "i", i);
            pad[len] = 'p';
            cr_assert_eq(cache_set(a->c, type, f, v, NULL), BP_OK);
            json_decref(v);
        } else if (cache_get(a->c, type, f, &out, NULL) == BP_OK) {
            json_decref(out);
        }
        json_decref(f);
    }
    return NULL;
}

typedef struct monitor_arg {
    cache *c;
    _Atomic int *stop;
    long long max_seen;
    int samples;
} monitor_arg;

static void *monitor_thread(void *p)
{
    monitor_arg *m = p;
    while (!atomic_load(m->stop)) {
        long long b = stat_int(m->c, NULL, "bytes");
        if (b > m->max_seen) {
            m->max_seen = b;
        }
        m->samples++;
    }
    return NULL;
}

Test(cache_lru, byte_bound_holds_under_concurrent_load, .timeout = 120)
{
    enum { THREADS = 6 };
    char cfg[128];
    snprintf(cfg, sizeof cfg, "{\"max_bytes\": %d, \"compress_threshold\": 0}", LOAD_MAX_BYTES);
    cache *c = open_mem(cfg);
    _Atomic int stop = 0;
    pthread_t th[THREADS], mon;
    load_arg args[THREADS];
    monitor_arg m = {.c = c, .stop = &stop};
    cr_assert_eq(pthread_create(&mon, NULL, monitor_thread, &m), 0);
    for (int i = 0; i < THREADS; i++) {
        args[i] = (load_arg){.c = c, .seed = i + 1, .stop = &stop};
        cr_assert_eq(pthread_create(&th[i], NULL, load_thread, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    atomic_store(&stop, 1);
    pthread_join(mon, NULL);

    cr_assert_gt(m.samples, 0);
    cr_assert_leq(m.max_seen, LOAD_MAX_BYTES, "bytes reached %lld of %d", m.max_seen,
                  LOAD_MAX_BYTES);
    long long bytes = stat_int(c, NULL, "bytes"), keys = stat_int(c, NULL, "keys");
    cr_assert_leq(bytes, LOAD_MAX_BYTES);
    cr_assert_gt(bytes, LOAD_MAX_BYTES / 2, "the cache should be well used: %lld", bytes);
    cr_assert_gt(keys, 0);
    cr_assert_gt(stat_int(c, NULL, "evictions"), 0);

    /* the accounting is exact: clearing everything returns it to zero */
    json_t *report = NULL;
    cr_assert_eq(cache_clear(c, NULL, &report, NULL), BP_OK);
    cr_assert_eq(json_integer_value(json_object_get(report, "removed")), keys);
    json_decref(report);
    cr_assert_eq(stat_int(c, NULL, "bytes"), 0);
    cr_assert_eq(stat_int(c, NULL, "keys"), 0);
    cache_close(c);
}

/* ---- maintenance, stats, CLI --------------------------------------------------------------- */

Test(cache_maint, invalidate_by_type_and_pattern)
{
    cache *c = open_mem(NULL);
    json_t *v = J("1");
    const char *odds[] = {"{\"league\":\"E0\",\"match\":1}", "{\"league\":\"E0\",\"match\":2}",
                          "{\"league\":\"SP1\",\"match\":3}"};
    for (size_t i = 0; i < BP_ARRAY_LEN(odds); i++) {
        json_t *f = J(odds[i]);
        cr_assert_eq(cache_set(c, "odds", f, v, NULL), BP_OK);
        cr_assert_eq(cache_set(c, "stats", f, v, NULL), BP_OK);
        json_decref(f);
    }
    uint64_t removed = 0;
    cr_assert_eq(cache_invalidate(c, "odds", "{\"league\":\"E0\"*", &removed, NULL), BP_OK);
    cr_assert_eq(removed, 2);
    cr_assert_eq(stat_int(c, "odds", "keys"), 1);
    cr_assert_eq(stat_int(c, "stats", "keys"), 3, "other types untouched");
    cr_assert_eq(cache_invalidate(c, NULL, "*SP1*", &removed, NULL), BP_OK);
    cr_assert_eq(removed, 2, "one odds and one stats entry");
    json_t *report = NULL;
    cr_assert_eq(cache_clear(c, "stats", &report, NULL), BP_OK);
    cr_assert_eq(json_integer_value(json_object_get(report, "removed")), 2);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(report, "types"), "stats")), 2);
    json_decref(report);
    cr_assert_eq(stat_int(c, NULL, "keys"), 0);
    json_decref(v);
    cache_close(c);
}

Test(cache_maint, cleanup_evicts_past_the_stale_limit)
{
    clock_at(T0);
    cache *c = open_mem("{\"stale_factor\": 2}");
    json_t *v = J("{\"x\": 1}"), *out = NULL;
    for (int i = 0; i < 5; i++) {
        json_t *f = json_pack("{s:i}", "i", i);
        cr_assert_eq(cache_set(c, "odds", f, v, NULL), BP_OK);
        cr_assert_eq(cache_set(c, "static", f, v, NULL), BP_OK);
        json_decref(f);
    }
    json_t *report = NULL;
    clock_advance(600 * 1000 - 1); /* odds stale but still within 2 x 300 s */
    cr_assert_eq(cache_cleanup(c, &report, NULL), BP_OK);
    cr_assert_eq(json_integer_value(json_object_get(report, "evicted")), 0);
    json_decref(report);

    clock_advance(1);
    cr_assert_eq(cache_cleanup(c, &report, NULL), BP_OK);
    json_t *types = json_object_get(report, "types");
    cr_assert_eq(json_integer_value(json_object_get(report, "evicted")), 5);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(types, "odds"), "evicted")), 5);
    cr_assert_gt(json_integer_value(json_object_get(json_object_get(types, "odds"), "bytes_freed")),
                 0);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(types, "odds"), "keys")), 0);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(types, "static"), "keys")), 5);
    json_decref(report);
    cr_assert_eq(stat_int(c, "odds", "expired"), 5);
    json_t *f3 = J("{\"i\":3}");
    cr_assert_eq(cache_get(c, "static", f3, &out, NULL), BP_OK);
    json_decref(out);
    json_decref(f3);
    json_decref(v);
    cache_close(c);
}

Test(cache_maint, stats_report_every_type)
{
    cache *c = open_mem(NULL);
    json_t *v = J("[1]"), *out = NULL, *st = NULL;
    cr_assert_eq(cache_set(c, "odds", NULL, v, NULL), BP_OK);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(cache_get(c, "odds", NULL, &out, NULL), BP_OK);
        json_decref(out);
    }
    json_t *x1 = J("{\"x\":1}");
    cr_assert_eq(cache_get(c, "odds", x1, &out, NULL), BP_E_NOTFOUND);
    json_decref(x1);
    cr_assert_eq(cache_stats(c, &st, NULL), BP_OK);
    cr_assert_str_eq(json_string_value(json_object_get(st, "backend")), "memory");
    cr_assert(json_is_true(json_object_get(st, "available")));
    json_t *types = json_object_get(st, "types");
    cr_assert_eq(json_object_size(types), 4);
    json_t *o = json_object_get(types, "odds");
    cr_assert_eq(json_integer_value(json_object_get(o, "hits")), 4);
    cr_assert_eq(json_integer_value(json_object_get(o, "misses")), 1);
    cr_assert_float_eq(json_real_value(json_object_get(o, "hit_rate")), 0.8, 1e-9);
    cr_assert_eq(json_integer_value(json_object_get(o, "keys")), 1);
    cr_assert_gt(json_integer_value(json_object_get(o, "bytes")), 0);
    cr_assert_eq(json_integer_value(json_object_get(o, "ttl_s")), 300);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(types, "static"), "ttl_s")),
                 86400);
    cr_assert_float_eq(
        json_real_value(json_object_get(json_object_get(types, "stats"), "hit_rate")), 0.0, 1e-9);
    json_decref(st);
    json_decref(v);
    cache_close(c);
}

Test(cache_maint, inspect_shows_fresh_and_stale_entries)
{
    clock_at(T0);
    cache *c = open_mem(NULL);
    json_t *v = J("{\"p\": [0.5, 0.3, 0.2]}"), *entry = NULL;
    json_t *f = J("{\"model\": \"elo\", \"match\": 99}");
    bp_error err = {0};
    cr_assert_eq(cache_set(c, "predictions", f, v, NULL), BP_OK);
    /* given as JSON filters in any key order */
    cr_assert_eq(cache_inspect(c, "predictions", "{\"match\":99,\"model\":\"elo\"}", &entry, &err),
                 BP_OK, "%s", err.msg);
    cr_assert_str_eq(json_string_value(json_object_get(entry, "key")),
                     "t:cache:predictions:{\"match\":99,\"model\":\"elo\"}");
    cr_assert(json_equal(json_object_get(entry, "value"), v));
    cr_assert(json_is_false(json_object_get(entry, "stale")));
    cr_assert_str_eq(json_string_value(json_object_get(entry, "fresh_until")),
                     "2026-01-01T00:10:00.000Z");
    cr_assert_str_eq(json_string_value(json_object_get(entry, "expires_at")),
                     "2026-01-01T01:00:00.000Z");
    json_decref(entry);

    clock_advance(11 * 60 * 1000);
    cr_assert_eq(cache_inspect(c, "predictions", "{\"match\":99,\"model\":\"elo\"}", &entry, NULL),
                 BP_OK);
    cr_assert(json_is_true(json_object_get(entry, "stale")));
    json_decref(entry);
    cr_assert_eq(stat_int(c, "predictions", "hits") + stat_int(c, "predictions", "misses"), 0,
                 "inspecting is not a lookup");

    cr_assert_eq(cache_inspect(c, "predictions", "{\"match\":100}", &entry, &err), BP_E_NOTFOUND);
    cr_assert(strstr(err.msg, "match\":100"), "%s", err.msg);
    json_decref(f);
    json_decref(v);
    cache_close(c);
}
