/*
 * cli_cache.c - `betpipe cache stats | get TYPE KEY | clear [TYPE]`.
 *
 * Where the entries live decides who answers. The in-memory cache (the default) lives inside
 * each daemon, so the command asks the running daemons - over their control sockets, or through
 * Redis with a Redis broker, as `inspect` does - and prints each daemon's answer. A Redis cache
 * is shared by every process pointing at it, so the command opens it itself and needs no daemon.
 *
 * Output is for people (a table per type for stats) unless --json, which prints the JSON as it
 * comes: the object itself from a Redis cache, {"<worker id>": {"ok", "reply" | "error"}} from
 * the daemons.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cache.h"
#include "cli.h"
#include "cli_util.h"
#include "control.h"
#include "control_redis.h"
#include "util.h"

static const cli_opt cache_opts[] = {
    {"destination", true, "W1,W2  in-memory cache: only these daemons (ids from `betpipe status`)"},
    {"timeout", true, "DUR        in-memory cache: how long to wait for the daemons (default 2s)"},
};

/* ---- printing ------------------------------------------------------------------------------- */

/* 812 B, 3.4 KiB, 1.2 MiB ... */
static void format_bytes(double b, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (b >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        b /= 1024.0;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

/* An integer member as text, or "-" when it is absent or null (not known, not counted). */
static const char *count_text(const json_t *o, const char *key, char *buf, size_t len)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) {
        return "-";
    }
    snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    return buf;
}

static void print_stats_row(const char *name, const json_t *o)
{
    char ttl[24] = "", hits[24], misses[24], stale[24], sets[24], ev[24], keys[24], bytes[24];
    const json_t *b = json_object_get(o, "bytes");
    if (json_is_integer(json_object_get(o, "ttl_s"))) {
        snprintf(ttl, sizeof ttl, "%llds",
                 (long long)json_integer_value(json_object_get(o, "ttl_s")));
    }
    if (json_is_integer(b)) {
        format_bytes((double)json_integer_value(b), bytes, sizeof bytes);
    } else {
        snprintf(bytes, sizeof bytes, "-");
    }
    printf("  %-12s %7s %9s %9s %7.1f%% %7s %9s %9s %8s %10s\n", name, ttl,
           count_text(o, "hits", hits, sizeof hits), count_text(o, "misses", misses, sizeof misses),
           100.0 * json_number_value(json_object_get(o, "hit_rate")),
           count_text(o, "stale_serves", stale, sizeof stale),
           count_text(o, "sets", sets, sizeof sets), count_text(o, "evictions", ev, sizeof ev),
           count_text(o, "keys", keys, sizeof keys), bytes);
}

/* The statistics object of cache_stats() as a table, one row per type and the totals. */
static void print_stats(const json_t *st)
{
    const char *backend = json_string_value(json_object_get(st, "backend"));
    bool shared = backend && strcmp(backend, "redis") == 0;
    const json_t *server = json_object_get(st, "server");
    const char *type;
    json_t *o;
    char max[24] = "";

    if (json_is_integer(json_object_get(st, "max_bytes"))) {
        format_bytes((double)json_integer_value(json_object_get(st, "max_bytes")), max, sizeof max);
    }
    printf("backend %s%s, %s; entries live up to %g x TTL%s%s\n", backend ? backend : "?",
           shared ? " (shared: counters of every process using it)" : "",
           json_is_true(json_object_get(st, "available")) ? "available" : "UNAVAILABLE",
           json_number_value(json_object_get(st, "stale_factor")), *max ? "; bound " : "", max);
    printf("  %-12s %7s %9s %9s %8s %7s %9s %9s %8s %10s\n", "type", "ttl", "hits", "misses",
           "hit rate", "stale", "sets", "evictions", "keys", "bytes");
    json_object_foreach(json_object_get(st, "types"), type, o)
    {
        print_stats_row(type, o);
    }
    print_stats_row("total", json_object_get(st, "totals"));
    if (!json_is_true(json_object_get(st, "available"))) {
        printf("the backend cannot be reached: the counters are this process's own, keys and "
               "bytes are unknown\n");
    }
    if (shared && !server && json_is_true(json_object_get(st, "available"))) {
        printf("evictions: Redis evicts and expires entries by itself and counts them only for "
               "the whole server, and its INFO could not be read\n");
    } else if (shared && server) {
        char used[24], limit[24] = "no limit", ev[24], ex[24];
        const json_t *mm = json_object_get(server, "maxmemory");
        format_bytes((double)json_integer_value(json_object_get(server, "used_memory")), used,
                     sizeof used);
        if (json_integer_value(mm) > 0) {
            format_bytes((double)json_integer_value(mm), limit, sizeof limit);
        }
        printf("evictions: Redis evicts and expires entries by itself and counts them only for "
               "the whole server (which may hold more than this cache):\n"
               "  server-wide evicted_keys %s, expired_keys %s; maxmemory-policy %s, used %s of "
               "%s\n",
               count_text(server, "evicted_keys", ev, sizeof ev),
               count_text(server, "expired_keys", ex, sizeof ex),
               json_string_value(json_object_get(server, "maxmemory_policy"))
                   ? json_string_value(json_object_get(server, "maxmemory_policy"))
                   : "?",
               used, limit);
    }
}

/* One entry (cache_inspect()): where it is, how fresh, then the value. */
static void print_entry(const json_t *e)
{
    char *value = json_dumps(json_object_get(e, "value"), JSON_INDENT(2) | JSON_ENCODE_ANY);
    printf("%s\n  %s until %s, gone at %s; %lld bytes stored (%s)\n%s\n",
           json_string_value(json_object_get(e, "key")),
           json_is_true(json_object_get(e, "stale"))
               ? "STALE (past its TTL: served only when a compute fails) since"
               : "fresh",
           json_string_value(json_object_get(e, "fresh_until")),
           json_string_value(json_object_get(e, "expires_at")),
           (long long)json_integer_value(json_object_get(e, "stored_bytes")),
           json_string_value(json_object_get(e, "encoding")), value ? value : "");
    free(value);
}

/* What cache_clear() removed. */
static void print_cleared(const json_t *r)
{
    const char *type;
    json_t *n;
    const char *sep = ": ";
    printf("removed %lld entr%s", (long long)json_integer_value(json_object_get(r, "removed")),
           json_integer_value(json_object_get(r, "removed")) == 1 ? "y" : "ies");
    json_object_foreach(json_object_get(r, "types"), type, n)
    {
        printf("%s%s %lld", sep, type, (long long)json_integer_value(n));
        sep = ", ";
    }
    printf("\n");
}

static void print_answer(const char *sub, const json_t *v)
{
    if (strcmp(sub, "stats") == 0) {
        print_stats(v);
    } else if (strcmp(sub, "get") == 0) {
        print_entry(v);
    } else {
        print_cleared(v);
    }
}

/* ---- the in-memory cache: ask the daemons -----------------------------------------------------
 */

static int ask_daemons(cli_args *a, app *ap, const char *sub, const json_t *args)
{
    const char *wire = strcmp(sub, "stats") == 0 ? "cache_stats"
                       : strcmp(sub, "get") == 0 ? "cache_get"
                                                 : "cache_clear";
    json_t *replies = NULL, *r;
    const char *worker;
    int rc = cli_ask_daemons(a, ap, wire, args, &replies);
    if (rc != 0) {
        return rc;
    }
    if (json_object_size(replies) == 0) {
        json_decref(replies);
        return cli_fail(a, BP_E_NOTFOUND,
                        "the cache is in memory (cache.backend \"memory\", the default), so it "
                        "lives inside the daemons, and no daemon answered (is one running?)");
    }
    if (a->json) {
        cli_print_json(replies);
    }
    rc = CLI_EXIT_OK;
    json_object_foreach(replies, worker, r)
    {
        bool ok = json_is_true(json_object_get(r, "ok"));
        if (!a->json && ok) {
            printf("daemon %s: ", worker);
            print_answer(sub, json_object_get(r, "reply"));
        } else if (!a->json) {
            printf("daemon %s: ERROR %s\n", worker, json_string_value(json_object_get(r, "error")));
        }
        if (!ok) {
            rc = CLI_EXIT_FAILURE;
        }
    }
    json_decref(replies);
    return rc;
}

/* ---- the command ------------------------------------------------------------------------------
 */

static int cmd_cache(cli_args *a, int argc, char **argv)
{
    app *ap = NULL;
    cache *c = NULL;
    bp_error err = {0};
    const char *sub = a->n_positional ? a->positional[0] : NULL;
    const char *type = a->n_positional > 1 ? a->positional[1] : NULL;
    json_t *args = NULL, *out = NULL;
    int rc;
    (void)argc;
    (void)argv;
    if (!sub ||
        (strcmp(sub, "stats") != 0 && strcmp(sub, "get") != 0 && strcmp(sub, "clear") != 0)) {
        return cli_fail(a, BP_E_INVAL, "usage: betpipe cache stats | get TYPE KEY | clear [TYPE]");
    }
    if ((strcmp(sub, "get") == 0 && a->n_positional != 3) ||
        (strcmp(sub, "stats") == 0 && a->n_positional != 1) ||
        (strcmp(sub, "clear") == 0 && a->n_positional > 2)) {
        return cli_fail(a, BP_E_INVAL,
                        "usage: betpipe cache stats | get TYPE KEY (KEY as JSON filters, e.g. "
                        "'{\"match_id\": 1234}', or the canonical key text) | clear [TYPE]");
    }
    if (type) {
        cache_type t;
        if (cache_type_parse(type, &t, &err) != BP_OK) {
            return cli_fail(a, BP_E_INVAL, err.msg);
        }
    }
    if ((rc = cli_open_app(a, APP_STORE, &ap)) != 0) {
        return rc;
    }
    {
        const char *prefix =
            json_string_value(json_object_get(config_section(ap->cfg, "broker"), "prefix"));
        rc = cache_open(config_section(ap->cfg, "cache"), prefix ? prefix : "bp", &c, &err);
    }
    if (rc != BP_OK) {
        app_close(ap);
        return cli_fail(a, rc, err.msg);
    }
    if (strcmp(cache_backend_name(c), "memory") == 0) {
        /* This process's own memory cache is empty: the entries are in the daemons. */
        cache_close(c);
        args = strcmp(sub, "get") == 0
                   ? json_pack("{s:s, s:s}", "type", type, "key", a->positional[2])
                   : json_pack("{s:s?}", "type", type);
        rc = ask_daemons(a, ap, sub, args);
        json_decref(args);
        app_close(ap);
        return rc;
    }
    if (strcmp(sub, "stats") == 0) {
        rc = cache_stats(c, &out, &err);
    } else if (strcmp(sub, "get") == 0) {
        rc = cache_inspect(c, type, a->positional[2], &out, &err);
    } else {
        rc = cache_clear(c, type, &out, &err);
    }
    if (rc == BP_OK && a->json) {
        cli_print_json(out);
    } else if (rc == BP_OK) {
        print_answer(sub, out);
    } else {
        rc = cli_fail(a, rc, err.msg);
    }
    json_decref(out);
    cache_close(c);
    app_close(ap);
    return rc;
}

const cli_command cli_cache_command = {
    "cache", "cache stats | get TYPE KEY | clear [TYPE] [--json]",
    "the typed cache: a table of counters per type, one entry, or clear (in-memory cache: asks "
    "the daemons; Redis cache: reads it directly)",
    CLI_OPTS(cache_opts), cmd_cache};
