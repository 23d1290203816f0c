/*
 * test_cache_redis.c - the Redis cache backend against a real redis-server on a unix socket:
 * entries and their expiry as Redis sees them, batches, SCAN-based invalidation and cleanup,
 * counters shared between processes, single-flight across two "daemons", and riding out a
 * Redis stop and restart (degraded, then recovered by itself, one warning per outage).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "cache.h"
#include "log.h"
#include "redis_fixture.h"
#include "support.h"
#include "util.h"

static bpt_redis *srv;

static void setup(void)
{
    srv = bpt_redis_start(NULL);
}

static void teardown(void)
{
    bpt_redis_free(srv);
    srv = NULL;
}

TestSuite(cache_redis, .init = setup, .fini = teardown, .timeout = 120);

static cache *open_redis(const char *extra)
{
    char text[1024];
    json_error_t jerr;
    cache *c = NULL;
    bp_error err = {0};
    snprintf(text, sizeof text, "{\"backend\": \"redis\", \"url\": \"%s\"%s%s}", bpt_redis_url(srv),
             extra ? ", " : "", extra ? extra : "");
    json_t *cfg = json_loads(text, 0, &jerr);
    cr_assert(cfg, "%s", jerr.text);
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

static long long redis_int(const char *fmt, const char *arg)
{
    redisReply *r = bpt_redis_cmd(srv, fmt, arg);
    cr_assert(r, "redis did not answer %s", fmt);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "%s: not an integer", fmt);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static long long stat_int(cache *c, const char *type, const char *name)
{
    json_t *st = NULL;
    cr_assert_eq(cache_stats(c, &st, NULL), BP_OK);
    json_t *o =
        type ? json_object_get(json_object_get(st, "types"), type) : json_object_get(st, "totals");
    json_t *v = json_object_get(o, name);
    cr_assert(json_is_integer(v), "stat %s.%s missing", type ? type : "totals", name);
    long long n = (long long)json_integer_value(v);
    json_decref(st);
    return n;
}

Test(cache_redis, entries_live_in_redis_with_the_stale_limit_as_expiry)
{
    cache *c = open_redis(NULL);
    json_t *f = J("{\"match\": 12, \"book\": \"pinnacle\"}"), *v = J("{\"home\": 1.91}");
    json_t *out = NULL;
    cr_assert_str_eq(cache_backend_name(c), "redis");
    cr_assert_eq(cache_set(c, "odds", f, v, NULL), BP_OK);

    const char *key = "t:cache:odds:{\"book\":\"pinnacle\",\"match\":12}";
    cr_assert_eq(redis_int("EXISTS %s", key), 1, "the key must be readable in Redis");
    long long pttl = redis_int("PTTL %s", key);
    cr_assert(pttl > 6 * 300 * 1000 - 5000 && pttl <= 6 * 300 * 1000, "PTTL %lld", pttl);

    cr_assert_eq(cache_get(c, "odds", f, &out, NULL), BP_OK);
    cr_assert(json_equal(out, v));
    json_decref(out);
    cr_assert_eq(cache_del(c, "odds", f, NULL), BP_OK);
    cr_assert_eq(redis_int("EXISTS %s", key), 0);
    cr_assert_eq(cache_get(c, "odds", f, &out, NULL), BP_E_NOTFOUND);
    json_decref(f);
    json_decref(v);
    cache_close(c);
}

static _Atomic int64_t fake_ms;

static int64_t fake_clock(void)
{
    return atomic_load(&fake_ms);
}

#define T0 1767225600000LL /* 2026-01-01T00:00:00Z */

typedef struct compute_ctx {
    _Atomic int calls;
    int fail;
    json_t *value;
    bool (*wait_cond)(void *ud); /* block inside compute until this holds */
} compute_ctx;

static int compute(void *ud, json_t **out_value, bp_error *err)
{
    compute_ctx *cx = ud;
    atomic_fetch_add(&cx->calls, 1);
    if (cx->wait_cond) {
        cr_assert(bpt_wait_for(cx->wait_cond, NULL, 10000), "compute waited in vain");
    }
    if (cx->fail) {
        return bp_err(err, BP_E_UNAVAILABLE, "the stats API is down");
    }
    *out_value = cx->value ? json_deep_copy(cx->value) : json_integer(atomic_load(&cx->calls));
    return BP_OK;
}

Test(cache_redis, freshness_and_stale_fallback_follow_the_injected_clock)
{
    atomic_store(&fake_ms, T0);
    util_set_clock(fake_clock);
    cache *c = open_redis(NULL);
    compute_ctx ok = {.value = J("{\"form\": \"WWW\"}")}, down = {.fail = 1};
    json_t *f = J("{\"team\": 57}"), *out = NULL;
    int stale = -1;
    cr_assert_eq(cache_get_or_compute(c, "stats", f, compute, &ok, &out, &stale, NULL), BP_OK);
    json_decref(out);
    atomic_store(&fake_ms, T0 + 1800 * 1000 - 1);
    cr_assert_eq(cache_get(c, "stats", f, &out, NULL), BP_OK);
    json_decref(out);
    atomic_store(&fake_ms, T0 + 1800 * 1000);
    cr_assert_eq(cache_get(c, "stats", f, &out, NULL), BP_E_NOTFOUND);
    cr_assert_eq(cache_get_or_compute(c, "stats", f, compute, &down, &out, &stale, NULL), BP_OK);
    cr_assert_eq(stale, 1);
    cr_assert(json_equal(out, ok.value));
    json_decref(out);
    /* past the stale limit the entry is gone for the cache even if Redis still holds it */
    atomic_store(&fake_ms, T0 + 6 * 1800 * 1000);
    cr_assert_eq(cache_get_or_compute(c, "stats", f, compute, &down, &out, &stale, NULL),
                 BP_E_UNAVAILABLE);
    json_t *report = NULL;
    cr_assert_eq(cache_cleanup(c, &report, NULL), BP_OK);
    json_t *st = json_object_get(json_object_get(report, "types"), "stats");
    cr_assert_eq(json_integer_value(json_object_get(st, "evicted")), 1);
    cr_assert_gt(json_integer_value(json_object_get(st, "bytes_freed")), 0);
    cr_assert_eq(json_integer_value(json_object_get(st, "keys")), 0);
    json_decref(report);
    cr_assert_eq(redis_int("EXISTS %s", "t:cache:stats:{\"team\":57}"), 0,
                 "cleanup must remove the entry from Redis");
    json_decref(f);
    json_decref(ok.value);
    cache_close(c);
}

/* Every type on Redis: the key's PTTL is its stale limit (stale_factor x TTL), the entry is fresh
 * until its TTL, served stale until the limit, then gone - with the MaraBet TTLs, and with the
 * file's and the environment's overrides. */
static void check_type_ttls(cache *c, const int64_t ttl_s[4], double factor)
{
    static const char *const types[4] = {"odds", "stats", "predictions", "static"};
    compute_ctx down = {.fail = 1};
    for (int t = 0; t < 4; t++) {
        char key[64];
        json_t *f = json_pack("{s:i}", "match_id", t), *v = json_pack("{s:s}", "type", types[t]);
        json_t *out = NULL;
        int stale = -1;
        int64_t ttl_ms = ttl_s[t] * 1000, limit_ms = (int64_t)((double)ttl_ms * factor);
        atomic_store(&fake_ms, T0);
        cr_assert_eq(cache_set(c, types[t], f, v, NULL), BP_OK);
        snprintf(key, sizeof key, "t:cache:%s:{\"match_id\":%d}", types[t], t);
        long long pttl = redis_int("PTTL %s", key);
        cr_assert(pttl > limit_ms - 5000 && pttl <= limit_ms, "%s: PTTL %lld, want %lld", types[t],
                  pttl, (long long)limit_ms);
        atomic_store(&fake_ms, T0 + ttl_ms - 1);
        cr_assert_eq(cache_get(c, types[t], f, &out, NULL), BP_OK, "%s fresh until its TTL",
                     types[t]);
        cr_assert(json_equal(out, v));
        json_decref(out);
        atomic_store(&fake_ms, T0 + ttl_ms);
        cr_assert_eq(cache_get(c, types[t], f, &out, NULL), BP_E_NOTFOUND, "%s stale at its TTL",
                     types[t]);
        atomic_store(&fake_ms, T0 + limit_ms - 1);
        cr_assert_eq(cache_get_or_compute(c, types[t], f, compute, &down, &out, &stale, NULL),
                     BP_OK, "%s served stale until its limit", types[t]);
        cr_assert_eq(stale, 1);
        json_decref(out);
        atomic_store(&fake_ms, T0 + limit_ms);
        cr_assert_eq(cache_get_or_compute(c, types[t], f, compute, &down, &out, &stale, NULL),
                     BP_E_UNAVAILABLE, "%s gone at its stale limit", types[t]);
        json_decref(f);
        json_decref(v);
    }
}

Test(cache_redis, every_type_keeps_its_own_ttl_on_redis)
{
    util_set_clock(fake_clock);
    cache *c = open_redis(NULL);
    const int64_t marabet[4] = {300, 1800, 600, 86400};
    check_type_ttls(c, marabet, 6.0);
    cache_close(c);

    setenv("BETPIPE_CACHE_TTL_ODDS", "90", 1);
    setenv("BETPIPE_CACHE_TTL_STATIC", "2h", 1);
    c = open_redis("\"ttl\": {\"odds\": 60, \"stats\": \"20m\", \"predictions\": 120}, "
                   "\"stale_factor\": 3");
    const int64_t overridden[4] = {90, 1200, 120, 7200}; /* the environment wins over the file */
    check_type_ttls(c, overridden, 3.0);
    cache_close(c);
}

Test(cache_redis, betpipe_cache_url_alone_selects_that_redis)
{
    setenv("BETPIPE_CACHE_URL", bpt_redis_url(srv), 1);
    cache *c = NULL;
    bp_error err = {0};
    cr_assert_eq(cache_open(NULL, "t", &c, &err), BP_OK, "%s", err.msg);
    cr_assert_str_eq(cache_backend_name(c), "redis");
    json_t *f = J("{\"team_id\": 3}"), *v = J("[1, 2]");
    cr_assert_eq(cache_set(c, "stats", f, v, NULL), BP_OK);
    cr_assert_eq(redis_int("EXISTS %s", "t:cache:stats:{\"team_id\":3}"), 1,
                 "the entry is in the Redis the environment named");
    cache_close(c);

    /* BETPIPE_CACHE_BACKEND=memory keeps the cache in the process despite a URL */
    setenv("BETPIPE_CACHE_BACKEND", "memory", 1);
    cr_assert_eq(cache_open(NULL, "t", &c, &err), BP_OK, "%s", err.msg);
    cr_assert_str_eq(cache_backend_name(c), "memory");
    cache_close(c);
    json_decref(f);
    json_decref(v);
}

Test(cache_redis, batches_and_compression)
{
    enum { N = 50 };
    cache *c = open_redis("\"compress_threshold\": 256");
    json_t *f[N + 1], *v[N], *out[N + 1];
    for (int i = 0; i <= N; i++) {
        f[i] = json_pack("{s:i}", "match", i);
    }
    for (int i = 0; i < N; i++) {
        v[i] = json_pack("{s:i, s:f}", "id", i, "p", i / 100.0);
    }
    cr_assert_eq(cache_mset(c, "odds", (const json_t *const *)f, (const json_t *const *)v, N, NULL),
                 BP_OK);
    cr_assert_eq(cache_mget(c, "odds", (const json_t *const *)f, N + 1, out, NULL), BP_OK);
    for (int i = 0; i < N; i++) {
        cr_assert(out[i] && json_equal(out[i], v[i]), "item %d", i);
        json_decref(out[i]);
    }
    cr_assert_null(out[N]);
    cr_assert_eq(stat_int(c, "odds", "hits"), N);
    cr_assert_eq(stat_int(c, "odds", "misses"), 1);
    cr_assert_eq(stat_int(c, "odds", "keys"), N);

    json_t *big = json_array(), *entry = NULL;
    for (int i = 0; i < 300; i++) {
        json_array_append_new(big, json_pack("{s:s, s:i}", "team", "Manchester United", "n", i));
    }
    cr_assert_eq(cache_set(c, "static", NULL, big, NULL), BP_OK);
    cr_assert_eq(cache_get(c, "static", NULL, &out[0], NULL), BP_OK);
    cr_assert(json_equal(out[0], big));
    json_decref(out[0]);
    cr_assert_eq(cache_inspect(c, "static", "{}", &entry, NULL), BP_OK);
    cr_assert_str_eq(json_string_value(json_object_get(entry, "encoding")), "zlib");
    long long strlen_redis = redis_int("STRLEN %s", "t:cache:static:{}");
    cr_assert_eq(strlen_redis, json_integer_value(json_object_get(entry, "stored_bytes")));
    json_decref(entry);
    for (int i = 0; i <= N; i++) {
        json_decref(f[i]);
    }
    for (int i = 0; i < N; i++) {
        json_decref(v[i]);
    }
    json_decref(big);
    cache_close(c);
}

Test(cache_redis, invalidate_uses_scan_and_leaves_other_keys)
{
    cache *c = open_redis(NULL);
    json_t *v = J("1");
    enum { E0 = 2500, SP1 = 300 };
    /* many keys, so that SCAN takes several rounds */
    for (int i = 0; i < E0 + SP1; i++) {
        json_t *f = json_pack("{s:s, s:i}", "league", i < E0 ? "E0" : "SP1", "match", i);
        cr_assert_eq(cache_set(c, "odds", f, v, NULL), BP_OK);
        if (i % 100 == 0) {
            cr_assert_eq(cache_set(c, "stats", f, v, NULL), BP_OK);
        }
        json_decref(f);
    }
    redisReply *r = bpt_redis_cmd(srv, "SET %s %s", "unrelated:key", "keep");
    freeReplyObject(r);
    uint64_t removed = 0;
    cr_assert_eq(cache_invalidate(c, "odds", "{\"league\":\"E0\"*", &removed, NULL), BP_OK);
    cr_assert_eq(removed, E0);
    cr_assert_eq(stat_int(c, "odds", "keys"), SP1);
    cr_assert_eq(stat_int(c, "stats", "keys"), (E0 + SP1) / 100);

    json_t *report = NULL;
    cr_assert_eq(cache_clear(c, NULL, &report, NULL), BP_OK);
    cr_assert_eq(json_integer_value(json_object_get(report, "removed")), SP1 + (E0 + SP1) / 100);
    json_decref(report);
    cr_assert_eq(redis_int("EXISTS %s", "unrelated:key"), 1, "only cache keys are removed");
    cr_assert_eq(stat_int(c, NULL, "keys"), 0);
    json_decref(v);
    cache_close(c);
}

Test(cache_redis, counters_are_shared_between_processes)
{
    cache *a = open_redis(NULL), *b = open_redis(NULL);
    json_t *v = J("[1]"), *out = NULL;
    cr_assert_eq(cache_set(a, "predictions", NULL, v, NULL), BP_OK);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(cache_get(a, "predictions", NULL, &out, NULL), BP_OK);
        json_decref(out);
    }
    cache_close(a); /* flushes its counters */
    cr_assert_eq(cache_get(b, "predictions", NULL, &out, NULL), BP_OK, "b sees a's entry");
    json_decref(out);
    cr_assert_eq(stat_int(b, "predictions", "hits"), 4);
    cr_assert_eq(stat_int(b, "predictions", "sets"), 1);
    /* stats flushed b's own increments: asking again does not count them twice */
    cr_assert_eq(stat_int(b, "predictions", "hits"), 4);
    json_decref(v);
    cache_close(b);
}

/* ---- single-flight across two daemons ------------------------------------------------------ */

static bool other_daemon_is_waiting(void *ud)
{
    /* The waiting daemon polls the lock with EXISTS; nothing else in this test sends EXISTS. */
    redisReply *r = bpt_redis_cmd(srv, "INFO commandstats");
    bool seen = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cmdstat_exists:calls=");
    (void)ud;
    if (r) {
        freeReplyObject(r);
    }
    return seen;
}

typedef struct daemon_arg {
    cache *c;
    compute_ctx *cx;
    json_t *filters;
    json_t *got;
    int rc;
} daemon_arg;

static void *daemon_thread(void *p)
{
    daemon_arg *d = p;
    d->rc = cache_get_or_compute(d->c, "odds", d->filters, compute, d->cx, &d->got, NULL, NULL);
    return NULL;
}

Test(cache_redis, second_daemon_waits_for_the_first_ones_value)
{
    cache *a = open_redis(NULL), *b = open_redis(NULL);
    json_t *f = J("{\"match\": 77}"), *va = J("\"from a\""), *vb = J("\"from b\"");
    compute_ctx ca = {.value = va, .wait_cond = other_daemon_is_waiting};
    compute_ctx cb = {.value = vb};
    daemon_arg da = {.c = a, .cx = &ca, .filters = f}, db = {.c = b, .cx = &cb, .filters = f};
    pthread_t ta, tb;
    cr_assert_eq(pthread_create(&ta, NULL, daemon_thread, &da), 0);
    /* b starts once a holds the lock (a's compute is running) */
    while (atomic_load(&ca.calls) == 0) {
        util_sleep_ms(1);
    }
    cr_assert_eq(pthread_create(&tb, NULL, daemon_thread, &db), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert_eq(da.rc, BP_OK);
    cr_assert_eq(db.rc, BP_OK);
    cr_assert_eq(atomic_load(&cb.calls), 0, "the second daemon must not compute");
    cr_assert(json_equal(db.got, va), "b gets a's value");
    json_decref(da.got);
    json_decref(db.got);
    json_decref(f);
    json_decref(va);
    json_decref(vb);
    cache_close(a);
    cache_close(b);
}

Test(cache_redis, a_lock_left_by_a_dead_daemon_only_delays)
{
    cache *c = open_redis(NULL);
    json_t *f = J("{\"match\": 5}"), *out = NULL;
    compute_ctx cx = {.value = J("42")};
    /* a daemon died holding the lock: it expires after its PX */
    redisReply *r =
        bpt_redis_cmd(srv, "SET %s %s PX 300", "t:cache-lock:odds:{\"match\":5}", "dead-daemon");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    int64_t t0 = util_mono_ns();
    cr_assert_eq(cache_get_or_compute(c, "odds", f, compute, &cx, &out, NULL, NULL), BP_OK);
    int64_t waited_ms = (util_mono_ns() - t0) / 1000000;
    cr_assert_eq(atomic_load(&cx.calls), 1);
    cr_assert(json_equal(out, cx.value));
    cr_assert_geq(waited_ms, 150, "it should have waited for the lock (%lld ms)",
                  (long long)waited_ms);
    cr_assert_eq(redis_int("EXISTS %s", "t:cache-lock:odds:{\"match\":5}"), 0,
                 "our own lock is released after computing");
    json_decref(out);
    json_decref(f);
    json_decref(cx.value);
    cache_close(c);
}

/* ---- outages -------------------------------------------------------------------------------- */

static int log_fd = -1;
static char log_path[600];

static int count_in_log(const char *needle)
{
    return bpt_count_in_file(log_path, needle);
}

typedef struct probe_arg {
    cache *c;
    int n;
} probe_arg;

static bool cache_works_again(void *ud)
{
    probe_arg *p = ud;
    json_t *f = json_pack("{s:i}", "probe", p->n++), *v = json_integer(1), *out = NULL;
    bool ok = cache_set(p->c, "odds", f, v, NULL) == BP_OK &&
              cache_get(p->c, "odds", f, &out, NULL) == BP_OK;
    json_decref(out);
    json_decref(f);
    json_decref(v);
    return ok && cache_available(p->c);
}

static void ride_out_an_outage(cache *c, compute_ctx *cx, int round)
{
    json_t *out = NULL;
    int before = atomic_load(&cx->calls);
    bpt_redis_stop(srv);
    for (int i = 0; i < 40; i++) {
        json_t *f = json_pack("{s:i, s:i}", "round", round, "i", i), *v = json_integer(i);
        int stale = -1;
        cr_assert_eq(cache_get_or_compute(c, "odds", f, compute, cx, &out, &stale, NULL), BP_OK,
                     "jobs must keep working while the cache is down (op %d)", i);
        json_decref(out);
        cr_assert_eq(cache_set(c, "odds", f, v, NULL), BP_OK);
        cr_assert_eq(cache_get(c, "odds", f, &out, NULL), BP_E_NOTFOUND);
        json_decref(f);
        json_decref(v);
    }
    cr_assert_eq(atomic_load(&cx->calls), before + 40, "every call computes while down");
    cr_assert_eq(cache_available(c), 0);

    bpt_redis_restart(srv);
    probe_arg p = {.c = c, .n = round * 1000};
    cr_assert(bpt_wait_for(cache_works_again, &p, 15000), "the cache did not recover by itself");

    /* cached again: one compute, then hits */
    json_t *f = json_pack("{s:i, s:s}", "round", round, "after", "restart");
    before = atomic_load(&cx->calls);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(cache_get_or_compute(c, "odds", f, compute, cx, &out, NULL, NULL), BP_OK);
        json_decref(out);
    }
    cr_assert_eq(atomic_load(&cx->calls), before + 1);
    json_decref(f);
}

Test(cache_redis, survives_redis_stop_and_restart)
{
    char *dir = bpt_tmpdir("cachelog");
    snprintf(log_path, sizeof log_path, "%s/log", dir);
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    cr_assert(log_fd >= 0);
    log_set_fd(log_fd);
    log_set_level(BP_LOG_INFO);

    cache *c = open_redis(NULL);
    compute_ctx cx = {0};
    json_t *f = J("{\"warm\": 1}"), *out = NULL;
    cr_assert_eq(cache_get_or_compute(c, "odds", f, compute, &cx, &out, NULL, NULL), BP_OK);
    json_decref(out);
    cr_assert_eq(cache_available(c), 1);

    ride_out_an_outage(c, &cx, 1);
    cr_assert_eq(count_in_log("WARN cache backend unavailable"), 1, "one warning per outage");
    cr_assert_eq(count_in_log("INFO cache backend recovered"), 1, "one info line on recovery");
    cr_assert_gt(stat_int(c, "odds", "sets_skipped"), 0);

    ride_out_an_outage(c, &cx, 2);
    cr_assert_eq(count_in_log("WARN cache backend unavailable"), 2);
    cr_assert_eq(count_in_log("INFO cache backend recovered"), 2);

    json_decref(f);
    cache_close(c);
    log_set_fd(2);
    close(log_fd);
    bpt_rm_rf(dir);
    free(dir);
}

Test(cache_redis, starts_degraded_when_redis_is_not_there)
{
    char *dir = bpt_tmpdir("cachenone");
    char cfg_text[700];
    snprintf(cfg_text, sizeof cfg_text, "{\"url\": \"unix://%s/nothing.sock\"}", dir);
    json_t *cfg = J(cfg_text), *f = J("{\"m\": 1}"), *v = J("2"), *out = NULL;
    cache *c = NULL;
    bp_error err = {0};
    cr_assert_eq(cache_open(cfg, "t", &c, &err), BP_OK, "an unreachable cache is not fatal: %s",
                 err.msg);
    cr_assert_str_eq(cache_backend_name(c), "redis", "a url alone selects redis");
    cr_assert_eq(cache_get(c, "odds", f, &out, NULL), BP_E_NOTFOUND);
    cr_assert_eq(cache_set(c, "odds", f, v, NULL), BP_OK);
    compute_ctx cx = {.value = v};
    cr_assert_eq(cache_get_or_compute(c, "odds", f, compute, &cx, &out, NULL, NULL), BP_OK);
    cr_assert(json_equal(out, v));
    json_decref(out);
    cr_assert_eq(cache_available(c), 0);
    cr_assert_eq(cache_clear(c, NULL, NULL, &err), BP_E_UNAVAILABLE,
                 "maintenance reports the outage");
    json_t *st = NULL;
    cr_assert_eq(cache_stats(c, &st, NULL), BP_OK, "stats still answer");
    cr_assert(json_is_false(json_object_get(st, "available")));
    json_decref(st);
    cache_close(c);
    json_decref(cfg);
    json_decref(f);
    json_decref(v);
    bpt_rm_rf(dir);
    free(dir);
}

Test(cache_redis, a_bad_url_is_a_config_error)
{
    json_t *cfg = J("{\"backend\": \"redis\", \"url\": \"http://localhost/\"}");
    cache *c = NULL;
    bp_error err = {0};
    cr_assert_eq(cache_open(cfg, "t", &c, &err), BP_E_CONFIG);
    cr_assert(strstr(err.msg, "cache.url"), "%s", err.msg);
    json_decref(cfg);
}

/* The same with several threads hammering the cache through the outage. */
typedef struct hammer {
    cache *c;
    compute_ctx *cx;
    _Atomic int *stop;
    _Atomic long ops;
    _Atomic long failures;
    _Atomic long hits;
    int seed;
} hammer;

static void *hammer_thread(void *p)
{
    hammer *h = p;
    for (long i = 0; !atomic_load(h->stop); i++) {
        json_t *f = json_pack("{s:i, s:i}", "seed", h->seed, "k", (int)(i % 50)), *out = NULL;
        int stale = 0;
        if (cache_get_or_compute(h->c, "stats", f, compute, h->cx, &out, &stale, NULL) != BP_OK ||
            !out) {
            atomic_fetch_add(&h->failures, 1);
        }
        json_decref(out);
        if (cache_get(h->c, "stats", f, &out, NULL) == BP_OK) {
            atomic_fetch_add(&h->hits, 1);
            json_decref(out);
        }
        json_decref(f);
        atomic_fetch_add(&h->ops, 1);
    }
    return NULL;
}

typedef struct progress {
    hammer *hs;
    int n;
    long ops_target;
    long hits_target;
    cache *c;
    int want_available;
} progress;

static long total_of(hammer *hs, int n, int hits)
{
    long t = 0;
    for (int i = 0; i < n; i++) {
        t += atomic_load(hits ? &hs[i].hits : &hs[i].ops);
    }
    return t;
}

static bool made_progress(void *ud)
{
    progress *p = ud;
    return total_of(p->hs, p->n, 0) >= p->ops_target &&
           total_of(p->hs, p->n, 1) >= p->hits_target &&
           (p->want_available < 0 || cache_available(p->c) == p->want_available);
}

Test(cache_redis, concurrent_callers_ride_out_an_outage)
{
    enum { N = 4 };
    char *dir = bpt_tmpdir("cachelog");
    snprintf(log_path, sizeof log_path, "%s/log", dir);
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    cr_assert(log_fd >= 0);
    log_set_fd(log_fd);
    log_set_level(BP_LOG_INFO);

    cache *c = open_redis(NULL);
    compute_ctx cx = {0};
    _Atomic int stop = 0;
    hammer hs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        hs[i] = (hammer){.c = c, .cx = &cx, .stop = &stop, .seed = i};
        cr_assert_eq(pthread_create(&th[i], NULL, hammer_thread, &hs[i]), 0);
    }
    progress p = {.hs = hs, .n = N, .c = c, .want_available = 1};
    p.ops_target = 400;
    p.hits_target = 200;
    cr_assert(bpt_wait_for(made_progress, &p, 15000), "no progress before the outage");

    bpt_redis_stop(srv);
    p.ops_target = total_of(hs, N, 0) + 400;
    p.hits_target = 0;
    p.want_available = 0;
    cr_assert(bpt_wait_for(made_progress, &p, 15000), "no progress during the outage");

    bpt_redis_restart(srv);
    p.ops_target = total_of(hs, N, 0) + 400;
    p.hits_target = total_of(hs, N, 1) + 200;
    p.want_available = 1;
    cr_assert(bpt_wait_for(made_progress, &p, 15000), "the cache did not come back");
    atomic_store(&stop, 1);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(atomic_load(&hs[i].failures), 0, "thread %d saw %ld failures", i,
                     atomic_load(&hs[i].failures));
    }
    cr_assert_eq(count_in_log("WARN cache backend unavailable"), 1, "one warning per outage");
    cr_assert_eq(count_in_log("INFO cache backend recovered"), 1, "one info line on recovery");
    cache_close(c);
    log_set_fd(2);
    close(log_fd);
    bpt_rm_rf(dir);
    free(dir);
}

Test(cache_redis, lives_on_a_redis_with_allkeys_lru)
{
    /* a cache Redis may evict under memory pressure: that is only ever a miss */
    bpt_redis_opts o = {.maxmemory = "2mb", .maxmemory_policy = "allkeys-lru"};
    bpt_redis *small = bpt_redis_start(&o);
    char text[600];
    snprintf(text, sizeof text, "{\"url\": \"%s\", \"compress_threshold\": 0}",
             bpt_redis_url(small));
    json_t *cfg = J(text);
    cache *c = NULL;
    bp_error err = {0};
    cr_assert_eq(cache_open(cfg, "t", &c, &err), BP_OK, "%s", err.msg);
    char pad[1001];
    memset(pad, 'x', 1000);
    pad[1000] = '\0';
    json_t *v = json_pack("{s:s}", "pad", pad);
    enum { N = 6000 }; /* about 6 MB into 2 MB */
    for (int i = 0; i < N; i++) {
        json_t *f = json_pack("{s:i}", "i", i);
        cr_assert_eq(cache_set(c, "stats", f, v, &err), BP_OK, "set %d: %s", i, err.msg);
        json_decref(f);
    }
    long long keys = stat_int(c, "stats", "keys");
    cr_assert_lt(keys, N, "Redis should have evicted");
    cr_assert_gt(keys, 0);
    cr_assert_eq(stat_int(c, "stats", "sets"), N);
    cr_assert_eq(stat_int(c, "stats", "sets_skipped"), 0);
    /* evicted entries are plain misses; what is left reads back intact */
    enum { TAIL = 200 };
    json_t *fs[TAIL], *outs[TAIL];
    int hits = 0;
    for (int i = 0; i < TAIL; i++) {
        fs[i] = json_pack("{s:i}", "i", N - TAIL + i);
    }
    cr_assert_eq(cache_mget(c, "stats", (const json_t *const *)fs, TAIL, outs, NULL), BP_OK);
    for (int i = 0; i < TAIL; i++) {
        if (outs[i]) {
            hits++;
            cr_assert(json_equal(outs[i], v));
            json_decref(outs[i]);
        }
        json_decref(fs[i]);
    }
    cr_assert_gt(hits, 0, "recent entries should mostly survive");
    json_decref(v);
    json_decref(cfg);
    cache_close(c);
    bpt_redis_free(small);
}
