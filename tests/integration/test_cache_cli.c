/*
 * test_cache_cli.c - `betpipe cache stats | get | clear` and maint.cleanup_cache through the real
 * binary, on both backends:
 *   - with a Redis cache (a real redis-server on a unix socket, chosen by BETPIPE_CACHE_URL)
 *     the CLI reads and clears the shared cache itself, with no daemon running; stats print a
 *     table per type, JSON only with --json;
 *   - on Redis, evictions are Redis's own: stats show the server-wide evicted_keys of INFO, not
 *     a per-type 0;
 *   - maint.cleanup_cache as a job evicts from the shared Redis cache what is past its stale
 *     limit and reports the count; with the in-memory cache it is refused outside a daemon
 *     (nothing there to clean) and cleans the daemon's own cache in a daemon;
 *   - BETPIPE_CACHE_BACKEND and BETPIPE_CACHE_URL from the environment choose the backend.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "cache.h"
#include "engine.h"
#include "redis_fixture.h"
#include "support.h"
#include "util.h"

static char *dd;
static bpt_redis *srv;

static void setup(void)
{
    bpt_engine_env_setup();
    unsetenv("BETPIPE_CACHE_URL");
    unsetenv("BETPIPE_CACHE_BACKEND");
    dd = bpt_tmpdir("cachecli");
    srv = bpt_redis_start(NULL);
}

static void teardown(void)
{
    bpt_redis_free(srv);
    bpt_rm_rf(dd);
    free(dd);
}

TestSuite(cache_cli, .init = setup, .fini = teardown, .timeout = 300);

static json_t *J(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    cr_assert(v, "bad JSON %s: %s", text, jerr.text);
    return v;
}

/* The cache the CLI opens for this instance: the broker's default prefix "bp", on `url`. */
static cache *open_shared(const char *url)
{
    char text[700];
    cache *c = NULL;
    bp_error err = {0};
    snprintf(text, sizeof text, "{\"url\": \"%s\"}", url);
    json_t *cfg = J(text);
    cr_assert_eq(cache_open(cfg, "bp", &c, &err), BP_OK, "%s", err.msg);
    json_decref(cfg);
    return c;
}

static void put(cache *c, const char *type, const char *filters, const char *value)
{
    json_t *f = J(filters), *v = J(value);
    bp_error err = {0};
    cr_assert_eq(cache_set(c, type, f, v, &err), BP_OK, "%s", err.msg);
    json_decref(f);
    json_decref(v);
}

static json_t *cli_json(const char *what, bpt_result r)
{
    json_t *v = json_loads(r.out, 0, NULL);
    cr_assert(v, "%s: no JSON (exit %d)\nstdout: %s\nstderr: %s", what, r.exit_code, r.out, r.err);
    return v;
}

/* The row of `type` in a `cache stats` table: ttl, hits, misses, hit rate, stale, sets. */
typedef struct stats_row {
    long long ttl, hits, misses, stale, sets;
    double hit_rate;
    char evictions[24], keys[24];
} stats_row;

static stats_row row_of(const char *table, const char *type)
{
    char needle[32];
    stats_row r = {0};
    snprintf(needle, sizeof needle, "\n  %s ", type);
    const char *at = strstr(table, needle);
    cr_assert(at, "no %s row in\n%s", type, table);
    int n = sscanf(at + strlen(needle), " %llds %lld %lld %lf%% %lld %lld %23s %23s", &r.ttl,
                   &r.hits, &r.misses, &r.hit_rate, &r.stale, &r.sets, r.evictions, r.keys);
    cr_assert_eq(n, 8, "the %s row does not read as a row of the table:\n%s", type, table);
    return r;
}

static long long info_stat(bpt_redis *r, const char *field)
{
    redisReply *rep = bpt_redis_cmd(r, "INFO stats");
    cr_assert(rep && rep->type == REDIS_REPLY_STRING);
    const char *at = strstr(rep->str, field);
    cr_assert(at, "no %s in INFO stats", field);
    long long v = strtoll(at + strlen(field) + 1, NULL, 10);
    freeReplyObject(rep);
    return v;
}

Test(cache_cli, a_redis_cache_is_read_and_cleared_by_the_cli_itself)
{
    setenv("BETPIPE_CACHE_URL", bpt_redis_url(srv), 1);
    cache *c = open_shared(bpt_redis_url(srv));
    put(c, "odds", "{\"match_id\": 1}", "[{\"bookmaker\": \"pinnacle\", \"price\": 2.1}]");
    put(c, "odds", "{\"match_id\": 2}", "[]");
    put(c, "stats", "{\"team_id\": 7, \"season\": 2023}", "{\"rank\": 3}");
    json_t *f = J("{\"match_id\": 1}"), *out = NULL;
    cr_assert_eq(cache_get(c, "odds", f, &out, NULL), BP_OK);
    json_decref(out);
    json_decref(f);
    f = J("{\"match_id\": 3}");
    cr_assert_eq(cache_get(c, "odds", f, &out, NULL), BP_E_NOTFOUND);
    json_decref(f);
    cache_close(c); /* flushes this process's counters into the shared hash */

    /* no daemon runs: the CLI reads Redis itself, and prints a table */
    bpt_result r = bpt_betpipe(dd, "cache", "stats", NULL);
    cr_assert_eq(r.exit_code, 0, "%s%s", r.out, r.err);
    cr_assert(!strchr(r.out, '{'), "a table, not JSON:\n%s", r.out);
    cr_assert(strstr(r.out, "backend redis") && strstr(r.out, "hit rate"), "%s", r.out);
    stats_row odds = row_of(r.out, "odds");
    cr_assert_eq(odds.ttl, 300);
    cr_assert_eq(odds.hits, 1);
    cr_assert_eq(odds.misses, 1);
    cr_assert_eq(odds.sets, 2);
    cr_assert(odds.hit_rate > 49.9 && odds.hit_rate < 50.1, "%s", r.out);
    cr_assert_str_eq(odds.keys, "2");
    stats_row stats = row_of(r.out, "stats");
    cr_assert_eq(stats.ttl, 1800);
    cr_assert_str_eq(stats.keys, "1");
    cr_assert_eq(row_of(r.out, "predictions").ttl, 600);
    cr_assert_eq(row_of(r.out, "static").ttl, 86400);
    bpt_result_free(&r);

    r = bpt_betpipe(dd, "cache", "stats", "--json", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    json_t *st = cli_json("stats --json", r);
    json_t *o = json_object_get(json_object_get(st, "types"), "odds");
    cr_assert_eq(json_integer_value(json_object_get(o, "keys")), 2);
    cr_assert_eq(json_integer_value(json_object_get(o, "hits")), 1);
    json_decref(st);
    bpt_result_free(&r);

    /* one entry, for people and as JSON */
    r = bpt_betpipe(dd, "cache", "get", "odds", "{\"match_id\": 1}", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "bp:cache:odds:{\"match_id\":1}") && strstr(r.out, "fresh until") &&
                  strstr(r.out, "\"pinnacle\""),
              "%s", r.out);
    bpt_result_free(&r);
    r = bpt_betpipe(dd, "cache", "get", "odds", "{\"match_id\": 1}", "--json", NULL);
    json_t *e = cli_json("get --json", r);
    json_t *want = J("[{\"bookmaker\": \"pinnacle\", \"price\": 2.1}]");
    cr_assert(json_equal(json_object_get(e, "value"), want));
    json_decref(want);
    json_decref(e);
    bpt_result_free(&r);
    r = bpt_betpipe(dd, "cache", "get", "odds", "{\"match_id\": 3}", NULL);
    cr_assert_eq(r.exit_code, 5, "no such entry is not found: %s", r.err);
    cr_assert(strstr(r.err, "no odds entry"), "%s", r.err);
    bpt_result_free(&r);

    /* clear one type, then everything */
    r = bpt_betpipe(dd, "cache", "clear", "odds", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "removed 2 entries: odds 2"), "%s", r.out);
    bpt_result_free(&r);
    redisReply *rep =
        bpt_redis_cmd(srv, "EXISTS %s", "bp:cache:stats:{\"season\":2023,\"team_id\":7}");
    cr_assert(rep && rep->integer == 1, "clear odds leaves the stats entry");
    freeReplyObject(rep);
    r = bpt_betpipe(dd, "cache", "clear", "--json", NULL);
    e = cli_json("clear --json", r);
    cr_assert_eq(json_integer_value(json_object_get(e, "removed")), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(e, "types"), "stats")), 1);
    json_decref(e);
    bpt_result_free(&r);
    rep = bpt_redis_cmd(srv, "EXISTS %s", "bp:cache:stats:{\"season\":2023,\"team_id\":7}");
    cr_assert(rep && rep->integer == 0);
    freeReplyObject(rep);

    r = bpt_betpipe(dd, "cache", "clear", "fixtures", NULL);
    cr_assert_eq(r.exit_code, 2);
    cr_assert(strstr(r.err, "unknown type 'fixtures'"), "%s", r.err);
    bpt_result_free(&r);
}

Test(cache_cli, on_redis_evictions_are_the_servers_not_a_per_type_zero)
{
    bpt_redis_opts opts = {.maxmemory = "2mb", .maxmemory_policy = "allkeys-lru"};
    bpt_redis *small = bpt_redis_start(&opts);
    setenv("BETPIPE_CACHE_URL", bpt_redis_url(small), 1);
    cache *c = open_shared(bpt_redis_url(small));
    char pad[1001];
    memset(pad, 'x', 1000);
    pad[1000] = '\0';
    json_t *v = json_pack("{s:s}", "pad", pad);
    for (int i = 0; i < 6000; i++) { /* about 6 MB into 2 MB */
        json_t *f = json_pack("{s:i}", "team_id", i);
        cr_assert_eq(cache_set(c, "stats", f, v, NULL), BP_OK);
        json_decref(f);
    }
    json_decref(v);
    cache_close(c);
    long long evicted = info_stat(small, "evicted_keys");
    cr_assert_gt(evicted, 0, "Redis should have evicted");

    bpt_result r = bpt_betpipe(dd, "cache", "stats", "--json", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    json_t *st = cli_json("stats --json", r);
    json_t *stats = json_object_get(json_object_get(st, "types"), "stats");
    cr_assert(json_is_null(json_object_get(stats, "evictions")),
              "Redis's evictions are not counted per type: null, not 0");
    json_t *server = json_object_get(st, "server");
    /* at least what INFO said before: the CLI's own counter flush may push out a few more */
    cr_assert_geq(json_integer_value(json_object_get(server, "evicted_keys")), evicted);
    cr_assert_str_eq(json_string_value(json_object_get(server, "maxmemory_policy")), "allkeys-lru");
    cr_assert_eq(json_integer_value(json_object_get(server, "maxmemory")), 2 * 1024 * 1024);
    json_decref(st);
    bpt_result_free(&r);

    r = bpt_betpipe(dd, "cache", "stats", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    cr_assert_str_eq(row_of(r.out, "stats").evictions, "-", "%s", r.out);
    const char *at = strstr(r.out, "server-wide evicted_keys ");
    cr_assert(at && strstr(r.out, "maxmemory-policy allkeys-lru"), "%s", r.out);
    cr_assert_geq(strtoll(at + strlen("server-wide evicted_keys "), NULL, 10), evicted, "%s",
                  r.out);
    bpt_result_free(&r);
    bpt_redis_free(small);
}

/* ---- maint.cleanup_cache -------------------------------------------------------------------- */

static _Atomic int64_t clock_ms;

static int64_t test_clock(void)
{
    return atomic_load(&clock_ms);
}

static json_t *run_cleanup(const char *const *env)
{
    const char *argv[] = {"betpipe", "--data-dir",    dd,  "run", "maint.cleanup_cache", "--wait",
                          "--json",  "--max-retries", "0", NULL};
    bpt_result r = bpt_run(argv, env, NULL, bpt_deadline_ms(60000));
    json_t *rec = cli_json("run maint.cleanup_cache", r);
    bpt_result_free(&r);
    return rec;
}

Test(cache_cli, cleanup_job_evicts_what_is_past_its_stale_limit_from_a_redis_cache)
{
    /* Entries written 35 minutes ago: odds (300 s x 6 = 30 min) are past their stale limit,
     * stats (1800 s) are not. Redis still holds them all (PX counts from the real write), so
     * only our cleanup finds the dead ones. */
    int64_t now = util_now_ms();
    atomic_store(&clock_ms, now - 35 * 60 * 1000LL);
    util_set_clock(test_clock);
    cache *c = open_shared(bpt_redis_url(srv));
    for (int i = 0; i < 3; i++) {
        char f[32];
        snprintf(f, sizeof f, "{\"match_id\": %d}", i);
        put(c, "odds", f, "[]");
    }
    put(c, "stats", "{\"team_id\": 1}", "{}");
    util_set_clock(NULL);
    put(c, "odds", "{\"match_id\": 99}", "[]"); /* written now: fresh */
    cache_close(c);
    redisReply *rep = bpt_redis_cmd(srv, "DBSIZE");
    long long before = rep->integer;
    freeReplyObject(rep);

    setenv("BETPIPE_CACHE_URL", bpt_redis_url(srv), 1);
    json_t *rec = run_cleanup(NULL);
    cr_assert_str_eq(json_string_value(json_object_get(rec, "state")), "SUCCESS", "%s",
                     json_string_value(json_object_get(rec, "error")));
    json_t *res = json_object_get(rec, "result");
    cr_assert_str_eq(json_string_value(json_object_get(res, "backend")), "redis");
    cr_assert_eq(json_integer_value(json_object_get(res, "evicted")), 3);
    json_t *odds = json_object_get(json_object_get(res, "types"), "odds");
    json_t *stats = json_object_get(json_object_get(res, "types"), "stats");
    cr_assert_eq(json_integer_value(json_object_get(odds, "evicted")), 3);
    cr_assert_gt(json_integer_value(json_object_get(odds, "bytes_freed")), 0);
    cr_assert_eq(json_integer_value(json_object_get(odds, "keys")), 1, "the fresh one stays");
    cr_assert_eq(json_integer_value(json_object_get(stats, "evicted")), 0);
    cr_assert_eq(json_integer_value(json_object_get(stats, "keys")), 1);
    cr_assert(json_is_false(json_object_get(res, "daemon")), "it ran in the CLI: %s",
              json_dumps(res, 0));
    json_decref(rec);
    rep = bpt_redis_cmd(srv, "DBSIZE");
    cr_assert_eq(rep->integer, before - 3, "the three dead entries are gone from Redis");
    freeReplyObject(rep);
    rep = bpt_redis_cmd(srv, "EXISTS %s", "bp:cache:odds:{\"match_id\":99}");
    cr_assert_eq(rep->integer, 1);
    freeReplyObject(rep);

    /* BETPIPE_CACHE_BACKEND wins over the URL: the memory cache of this CLI is not worth
     * cleaning, and the job says so instead of reporting 0 */
    const char *env[] = {"BETPIPE_CACHE_BACKEND=memory", NULL};
    rec = run_cleanup(env);
    cr_assert_str_eq(json_string_value(json_object_get(rec, "state")), "FAILURE");
    const char *msg = json_string_value(json_object_get(rec, "error"));
    cr_assert(msg && strstr(msg, "the cache is in memory") && strstr(msg, "inside each daemon") &&
                  strstr(msg, "nothing was cleaned"),
              "%s", msg ? msg : "(no error)");
    cr_assert_eq(json_integer_value(json_object_get(rec, "attempts")), 1, "not retried");
    json_decref(rec);
}

Test(cache_cli, the_environment_chooses_the_backend_over_the_config_file)
{
    /* the file says memory; BETPIPE_CACHE_BACKEND and BETPIPE_CACHE_URL say this Redis */
    bpt_write_in(dd, "betpipe.json", "{\"cache\": {\"backend\": \"memory\"}}");
    bpt_result r = bpt_betpipe(dd, "cache", "stats", NULL);
    cr_assert_eq(r.exit_code, 5, "memory: asks the daemons, and none runs\n%s", r.out);
    cr_assert(strstr(r.err, "no daemon answered"), "%s", r.err);
    bpt_result_free(&r);

    cache *c = open_shared(bpt_redis_url(srv));
    put(c, "static", "{\"kind\": \"leagues\"}", "[\"E0\"]");
    cache_close(c);
    setenv("BETPIPE_CACHE_BACKEND", "redis", 1);
    setenv("BETPIPE_CACHE_URL", bpt_redis_url(srv), 1);
    r = bpt_betpipe(dd, "cache", "get", "static", "{\"kind\": \"leagues\"}", "--json", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    json_t *e = cli_json("get --json", r), *want = J("[\"E0\"]");
    cr_assert(json_equal(json_object_get(e, "value"), want), "the entry from Redis: %s", r.out);
    json_decref(want);
    json_decref(e);
    bpt_result_free(&r);
}

Test(cache_cli, a_memory_cache_is_the_daemons_and_the_daemon_cleans_its_own)
{
    pid_t d = bpt_daemon_start(dd, NULL);
    bpt_result r = bpt_betpipe(dd, "cache", "stats", NULL);
    cr_assert_eq(r.exit_code, 0, "%s%s", r.out, r.err);
    cr_assert(strstr(r.out, "daemon ") && strstr(r.out, "backend memory") &&
                  strstr(r.out, "bound 64.0 MiB"),
              "%s", r.out);
    cr_assert(!strchr(r.out, '{'), "a table, not JSON:\n%s", r.out);
    cr_assert_str_eq(row_of(r.out, "odds").evictions, "0", "memory counts its evictions");
    bpt_result_free(&r);

    json_t *rec = run_cleanup(NULL);
    cr_assert_str_eq(json_string_value(json_object_get(rec, "state")), "SUCCESS", "%s",
                     json_string_value(json_object_get(rec, "error")));
    json_t *res = json_object_get(rec, "result");
    cr_assert(json_is_true(json_object_get(res, "daemon")));
    cr_assert_str_eq(json_string_value(json_object_get(res, "worker")),
                     json_string_value(json_object_get(rec, "worker")),
                     "the result names the daemon whose cache it cleaned");
    json_decref(rec);

    r = bpt_betpipe(dd, "cache", "clear", "predictions", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "daemon ") && strstr(r.out, "removed 0 entries: predictions 0"), "%s",
              r.out);
    bpt_result_free(&r);
    cr_assert_eq(bpt_stop(d, SIGTERM, 15000), 0);
}
