/*
 * test_redis_conn.c - the Redis connection layer against a real redis-server (unix socket).
 *
 * URL forms, AUTH (password and ACL user, wrong credentials), TLS refusal, fail-fast when Redis
 * is absent, recovery of the same connection after Redis stops and comes back (and the log lines
 * that outage produces: one when it starts, one when it ends), the idle health check, script
 * loading across restarts and SCRIPT FLUSH, pipelines, command timeouts, interruptible blocking
 * commands and pub/sub waits.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "log.h"
#include "redis_conn.h"
#include "redis_fixture.h"
#include "support.h"
#include "util.h"

static bpt_redis *srv;
static char *logdir;

static void teardown(void)
{
    bpt_redis_free(srv);
    srv = NULL;
    if (logdir) {
        bpt_rm_rf(logdir);
        free(logdir);
        logdir = NULL;
    }
}

static void start_plain(void)
{
    srv = bpt_redis_start(NULL);
}

/* Send the core's log lines to a file we can read back; returns its path (static buffer). */
static const char *capture_log(void)
{
    static char path[256];
    int fd;
    logdir = bpt_tmpdir("redislog");
    snprintf(path, sizeof path, "%s/log.txt", logdir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    cr_assert(fd >= 0);
    log_set_fd(fd);
    return path;
}

static int count_lines_with(const char *path, const char *needle)
{
    char *text = bpt_slurp(path);
    int n = 0;
    cr_assert(text);
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle)) {
        n++;
    }
    free(text);
    return n;
}

static redis_conn *open_ok(const char *url, const redis_conn_options *o)
{
    redis_conn *c = NULL;
    bp_error err = {0};
    int rc = redis_conn_open(url, o, &c, &err);
    cr_assert_eq(rc, BP_OK, "open %s: %s", url, err.msg);
    return c;
}

static long long incr(redis_conn *c, const char *key, int *out_rc)
{
    redisReply *r = NULL;
    bp_error err = {0};
    long long v = -1;
    *out_rc = redis_conn_command(c, &r, &err, "INCR %s", key);
    if (*out_rc == BP_OK) {
        v = r->integer;
        freeReplyObject(r);
    }
    return v;
}

/* ---- URLs (no server) ---------------------------------------------------------------------- */

Test(redis_url, tcp_forms)
{
    redis_url u;
    bp_error err = {0};
    cr_assert_eq(redis_url_parse("redis://cache.example:7000/3", &u, &err), BP_OK, "%s", err.msg);
    cr_assert_str_eq(u.host, "cache.example");
    cr_assert_eq(u.port, 7000);
    cr_assert_eq(u.db, 3);
    cr_assert_null(u.user);
    cr_assert_null(u.password);
    cr_assert_not(u.unix_socket);
    redis_url_clear(&u);

    cr_assert_eq(redis_url_parse("redis://alice:p%40ss:w@[::1]:6380/2", &u, &err), BP_OK, "%s",
                 err.msg);
    cr_assert_str_eq(u.host, "::1");
    cr_assert_eq(u.port, 6380);
    cr_assert_str_eq(u.user, "alice");
    cr_assert_str_eq(u.password, "p@ss:w");
    cr_assert_eq(u.db, 2);
    redis_url_clear(&u);

    cr_assert_eq(redis_url_parse("redis://:secret@localhost", &u, &err), BP_OK);
    cr_assert_null(u.user);
    cr_assert_str_eq(u.password, "secret");
    cr_assert_eq(u.port, 6379);
    cr_assert_eq(u.db, 0);
    redis_url_clear(&u);

    cr_assert_eq(redis_url_parse("rediss://h:1/0", &u, &err), BP_OK);
    cr_assert(u.tls);
    redis_url_clear(&u);
}

Test(redis_url, unix_forms)
{
    redis_url u;
    bp_error err = {0};
    cr_assert_eq(redis_url_parse("unix:///run/redis/redis.sock?db=4", &u, &err), BP_OK, "%s",
                 err.msg);
    cr_assert(u.unix_socket);
    cr_assert_str_eq(u.path, "/run/redis/redis.sock");
    cr_assert_eq(u.db, 4);
    redis_url_clear(&u);

    cr_assert_eq(redis_url_parse("unix://bob:pw@/tmp/r.sock", &u, &err), BP_OK, "%s", err.msg);
    cr_assert_str_eq(u.user, "bob");
    cr_assert_str_eq(u.password, "pw");
    cr_assert_str_eq(u.path, "/tmp/r.sock");
    redis_url_clear(&u);

    cr_assert_eq(redis_url_parse("unix:///tmp/r.sock?password=x%26y&username=ann", &u, &err), BP_OK,
                 "%s", err.msg);
    cr_assert_str_eq(u.password, "x&y");
    cr_assert_str_eq(u.user, "ann");
    redis_url_clear(&u);
}

Test(redis_url, bad_urls_name_the_problem_and_hide_the_password)
{
    redis_url u;
    bp_error err = {0};
    cr_assert_eq(redis_url_parse("http://h", &u, &err), BP_E_CONFIG);
    cr_assert(strstr(err.msg, "redis://"), "%s", err.msg);
    cr_assert_eq(redis_url_parse("redis://:hunter2@h:99999", &u, &err), BP_E_CONFIG);
    cr_assert(strstr(err.msg, "port"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "hunter2"), "password leaked: %s", err.msg);
    cr_assert(strstr(err.msg, "***"), "%s", err.msg);
    cr_assert_eq(redis_url_parse("redis://h/abc", &u, &err), BP_E_CONFIG);
    cr_assert(strstr(err.msg, "database 'abc'"), "%s", err.msg);
    cr_assert_eq(redis_url_parse("unix://relative/path.sock", &u, &err), BP_E_CONFIG);
    cr_assert(strstr(err.msg, "absolute"), "%s", err.msg);
    cr_assert_eq(redis_url_parse("unix:///x.sock?timeout=5", &u, &err), BP_E_CONFIG);
    cr_assert(strstr(err.msg, "unknown parameter 'timeout'"), "%s", err.msg);
    cr_assert_eq(redis_url_parse("unix:///x.sock?password=hunter2&db=z", &u, &err), BP_E_CONFIG);
    cr_assert_null(strstr(err.msg, "hunter2"), "password leaked: %s", err.msg);
}

Test(redis_url, redact)
{
    char buf[256];
    redis_url_redact("redis://alice:s3cr3t@h:1/2", buf, sizeof buf);
    cr_assert_str_eq(buf, "redis://alice:***@h:1/2");
    redis_url_redact("redis://s3cr3t@h", buf, sizeof buf);
    cr_assert_str_eq(buf, "redis://***@h");
    redis_url_redact("unix://:s3cr3t@/tmp/a.sock?db=1", buf, sizeof buf);
    cr_assert_str_eq(buf, "unix://:***@/tmp/a.sock?db=1");
    redis_url_redact("unix:///tmp/a.sock?db=1&password=s3cr3t", buf, sizeof buf);
    cr_assert_str_eq(buf, "unix:///tmp/a.sock?db=1&password=***");
    redis_url_redact("redis://h:6379/0", buf, sizeof buf);
    cr_assert_str_eq(buf, "redis://h:6379/0");
}

Test(redis_url, seed_variables)
{
    char *url = NULL;
    redis_url u;
    bp_error err = {0};
    cr_assert_eq(redis_url_from_parts("redis.internal", "6390", "5", "p@ss word/:", &url, &err),
                 BP_OK, "%s", err.msg);
    cr_assert_eq(redis_url_parse(url, &u, &err), BP_OK, "%s", err.msg);
    cr_assert_str_eq(u.host, "redis.internal");
    cr_assert_eq(u.port, 6390);
    cr_assert_eq(u.db, 5);
    cr_assert_str_eq(u.password, "p@ss word/:", "round trip of an awkward password");
    redis_url_clear(&u);
    free(url);

    cr_assert_eq(redis_url_from_parts("/var/run/redis.sock", NULL, "2", NULL, &url, &err), BP_OK);
    cr_assert_str_eq(url, "unix:///var/run/redis.sock?db=2");
    free(url);

    cr_assert_eq(redis_url_from_parts("h", "http", NULL, NULL, &url, &err), BP_E_CONFIG);
    cr_assert(strstr(err.msg, "REDIS_PORT"), "%s", err.msg);
    cr_assert_eq(redis_url_from_parts("h", NULL, "-1", NULL, &url, &err), BP_E_CONFIG);
    cr_assert(strstr(err.msg, "REDIS_DB"), "%s", err.msg);

    unsetenv("REDIS_HOST");
    cr_assert_eq(redis_url_from_env(&url, &err), BP_E_NOTFOUND);
    cr_assert_null(url);
}

Test(redis_conn, tls_is_refused_clearly)
{
    redis_conn *c = NULL;
    bp_error err = {0};
    cr_assert_eq(redis_conn_open("rediss://:pw@127.0.0.1:6379/0", NULL, &c, &err), BP_E_CONFIG);
    cr_assert_null(c);
    cr_assert(strstr(err.msg, "TLS"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "pw@"), "%s", err.msg);
}

Test(redis_conn, unreachable_fails_fast)
{
    redis_conn *c = NULL;
    bp_error err = {0};
    int64_t t0 = bpt_now_ms();
    cr_assert_eq(redis_conn_open("unix:///nonexistent/dir/redis.sock", NULL, &c, &err),
                 BP_E_UNAVAILABLE);
    cr_assert(strstr(err.msg, "/nonexistent/dir/redis.sock"), "%s", err.msg);
    cr_assert(strstr(err.msg, "cannot connect"), "%s", err.msg);
    cr_assert_eq(redis_conn_open("redis://:pw@127.0.0.1:1/0", NULL, &c, &err), BP_E_UNAVAILABLE);
    cr_assert(strstr(err.msg, "127.0.0.1:1"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, ":pw@"), "%s", err.msg);
    /* "fast": no connect timeout was waited for (5 s), with room for a slow machine */
    cr_assert_lt(bpt_now_ms() - t0, 4000);
}

/* ---- against a server ---------------------------------------------------------------------- */

Test(redis_conn, commands_db_and_client_name, .init = start_plain, .fini = teardown)
{
    char url[300];
    redis_conn_options o;
    redisReply *r = NULL;
    bp_error err = {0};
    redis_conn_options_default(&o);
    o.client_name = "bp test conn";
    snprintf(url, sizeof url, "%s?db=3", bpt_redis_url(srv));
    redis_conn *c = open_ok(url, &o);
    cr_assert(redis_conn_is_up(c));
    cr_assert_eq(redis_conn_command(c, NULL, &err, "SET %s %b", "k", "v\0x", (size_t)3), BP_OK);
    cr_assert_eq(redis_conn_command(c, &r, &err, "GET k"), BP_OK);
    cr_assert_eq(r->len, 3);
    cr_assert_eq(memcmp(r->str, "v\0x", 3), 0);
    freeReplyObject(r);
    cr_assert_eq(redis_conn_command(c, &r, &err, "CLIENT GETNAME"), BP_OK);
    cr_assert_str_eq(r->str, "bp-test-conn");
    freeReplyObject(r);
    /* the key lives in db 3, not db 0 */
    r = bpt_redis_cmd(srv, "EXISTS k");
    cr_assert_eq(r->integer, 0);
    freeReplyObject(r);
    r = bpt_redis_cmd(srv, "DBSIZE");
    freeReplyObject(r);
    /* an error reply is a status with the server's words, not a crash */
    cr_assert_eq(redis_conn_command(c, &r, &err, "LPUSH k x"), BP_E_INTERNAL);
    cr_assert_null(r);
    cr_assert(strstr(err.msg, "WRONGTYPE"), "%s", err.msg);
    redis_conn_close(c);
}

Test(redis_conn, seed_env_reaches_the_server, .init = start_plain, .fini = teardown)
{
    char *url = NULL;
    bp_error err = {0};
    setenv("REDIS_HOST", bpt_redis_socket(srv), 1);
    setenv("REDIS_DB", "1", 1);
    unsetenv("REDIS_PORT");
    unsetenv("REDIS_PASSWORD");
    cr_assert_eq(redis_url_from_env(&url, &err), BP_OK, "%s", err.msg);
    redis_conn *c = open_ok(url, NULL);
    int rc;
    cr_assert_eq(incr(c, "n", &rc), 1);
    redis_conn_close(c);
    free(url);
}

Test(redis_conn, password_auth, .fini = teardown)
{
    bpt_redis_opts o = {.requirepass = "pw with spaces&more"};
    redis_conn *c = NULL;
    bp_error err = {0};
    int rc;
    srv = bpt_redis_start(&o);
    char *good = bpt_redis_url_with(srv, NULL, "pw%20with%20spaces%26more");
    char *bad = bpt_redis_url_with(srv, NULL, "wrong-guess");
    c = open_ok(good, NULL);
    cr_assert_eq(incr(c, "n", &rc), 1);
    redis_conn_close(c);

    cr_assert_eq(redis_conn_open(bad, NULL, &c, &err), BP_E_CONFIG);
    cr_assert(strstr(err.msg, "authentication failed"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "wrong-guess"), "password leaked: %s", err.msg);

    /* no password at all: the server says so, clearly */
    cr_assert_eq(redis_conn_open(bpt_redis_url(srv), NULL, &c, &err), BP_E_CONFIG);
    cr_assert(strstr(err.msg, "NOAUTH"), "%s", err.msg);
    free(good);
    free(bad);
}

Test(redis_conn, acl_user_auth, .fini = teardown)
{
    bpt_redis_opts o = {.acl_user = "worker", .acl_password = "s3cret"};
    redis_conn *c = NULL;
    redisReply *r = NULL;
    bp_error err = {0};
    srv = bpt_redis_start(&o);
    char *good = bpt_redis_url_with(srv, "worker", "s3cret");
    char *bad = bpt_redis_url_with(srv, "worker", "nope");
    c = open_ok(good, NULL);
    cr_assert_eq(redis_conn_command(c, &r, &err, "ACL WHOAMI"), BP_OK, "%s", err.msg);
    cr_assert_str_eq(r->str, "worker");
    freeReplyObject(r);
    redis_conn_close(c);
    cr_assert_eq(redis_conn_open(bad, NULL, &c, &err), BP_E_CONFIG);
    cr_assert(strstr(err.msg, "WRONGPASS"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "nope"), "%s", err.msg);
    free(good);
    free(bad);
}

typedef struct recover_ctx {
    redis_conn *c;
    long long value;
} recover_ctx;

static bool incr_succeeds(void *ud)
{
    recover_ctx *x = ud;
    int rc;
    long long v = incr(x->c, "n", &rc);
    if (rc == BP_OK) {
        x->value = v;
        return true;
    }
    cr_assert_eq(rc, BP_E_UNAVAILABLE);
    return false;
}

Test(redis_conn, stopped_then_restarted_recovers_by_itself, .fini = teardown)
{
    bpt_redis_opts so = {.aof = true};
    redis_conn_options o;
    bp_error err = {0};
    int rc;
    const char *logpath = capture_log();
    srv = bpt_redis_start(&so);
    redis_conn_options_default(&o);
    o.backoff_min_ms = 20;
    o.backoff_max_ms = 200;
    redis_conn *c = open_ok(bpt_redis_url(srv), &o);
    cr_assert_eq(incr(c, "n", &rc), 1);

    bpt_redis_stop(srv);
    /* Many failing calls during the outage: each fails fast with UNAVAILABLE ... */
    for (int i = 0; i < 50; i++) {
        incr(c, "n", &rc);
        cr_assert_eq(rc, BP_E_UNAVAILABLE);
    }
    cr_assert_not(redis_conn_is_up(c));
    cr_assert_eq(redis_conn_check(c, &err), BP_E_UNAVAILABLE);
    cr_assert(strstr(err.msg, bpt_redis_socket(srv)), "%s", err.msg);

    /* ... and the same connection comes back by itself once Redis does. */
    bpt_redis_restart(srv);
    recover_ctx x = {.c = c};
    cr_assert(bpt_wait_for(incr_succeeds, &x, 5000), "connection did not recover");
    cr_assert_eq(x.value, 2, "AOF kept the counter");
    cr_assert_geq(redis_conn_generation(c), 2);

    /* one line when the outage started, one when it ended - not one per failed call */
    cr_assert_eq(count_lines_with(logpath, "redis connection lost"), 1);
    cr_assert_eq(count_lines_with(logpath, "redis connection restored"), 1);
    cr_assert_eq(count_lines_with(logpath, "redis unreachable"), 0);
    redis_conn_close(c);
}

static bool attempt_allowed(void *ud)
{
    return redis_conn_retry_in_ms(ud) == 0;
}

Test(redis_conn, backoff_grows_and_is_capped, .init = start_plain, .fini = teardown)
{
    redis_conn_options o;
    bp_error err = {0};
    int rc;
    redis_conn_options_default(&o);
    o.backoff_min_ms = 10;
    o.backoff_max_ms = 160;
    redis_conn *c = open_ok(bpt_redis_url(srv), &o);
    bpt_redis_kill9(srv);
    incr(c, "n", &rc); /* notices the loss */
    cr_assert_eq(rc, BP_E_UNAVAILABLE);
    int64_t max_seen = 0;
    for (int i = 0; i < 12; i++) {
        /* wait until an attempt is allowed, then make it fail */
        cr_assert(bpt_wait_for(attempt_allowed, c, 2000));
        cr_assert_eq(redis_conn_check(c, &err), BP_E_UNAVAILABLE);
        int64_t delay = redis_conn_retry_in_ms(c);
        cr_assert_leq(delay, 160, "backoff above its cap: %lld", (long long)delay);
        if (delay > max_seen) {
            max_seen = delay;
        }
        /* within the backoff, calls fail at once without trying */
        cr_assert_eq(redis_conn_check(c, &err), BP_E_UNAVAILABLE);
        cr_assert(strstr(err.msg, "next reconnect attempt in"), "%s", err.msg);
    }
    /* equal jitter keeps the delay in [cap/2, cap] once capped */
    cr_assert_geq(max_seen, 70, "backoff never grew: %lld", (long long)max_seen);
    redis_conn_close(c);
}

Test(redis_conn, lazy_open_while_down, .init = start_plain, .fini = teardown)
{
    redis_conn_options o;
    redis_conn *c = NULL;
    bp_error err = {0};
    int rc;
    redis_conn_options_default(&o);
    o.lazy = true;
    o.backoff_min_ms = 10;
    o.backoff_max_ms = 50;
    bpt_redis_stop(srv);
    cr_assert_eq(redis_conn_open(bpt_redis_url(srv), &o, &c, &err), BP_OK, "%s", err.msg);
    incr(c, "n", &rc);
    cr_assert_eq(rc, BP_E_UNAVAILABLE);
    bpt_redis_restart(srv);
    recover_ctx x = {.c = c};
    cr_assert(bpt_wait_for(incr_succeeds, &x, 5000));
    cr_assert_eq(x.value, 1);
    redis_conn_close(c);
}

Test(redis_conn, quiet_restart_is_invisible, .init = start_plain, .fini = teardown)
{
    redis_conn_options o;
    int rc;
    redis_conn_options_default(&o);
    o.health_check_ms = 0; /* no PING: the closed socket alone must be noticed */
    redis_conn *c = open_ok(bpt_redis_url(srv), &o);
    cr_assert_eq(incr(c, "n", &rc), 1);
    bpt_redis_stop(srv);
    bpt_redis_restart(srv);
    /* The socket the old server closed is noticed before the command is sent; the caller sees
     * success on its very first call after the restart. */
    cr_assert_eq(incr(c, "n", &rc), 1, "rc=%d", rc);
    cr_assert_eq(rc, BP_OK);
    redis_conn_close(c);
}

Test(redis_conn, health_check_catches_an_unresponsive_server, .init = start_plain, .fini = teardown)
{
    redis_conn_options o;
    bp_error err = {0};
    int rc;
    redis_conn_options_default(&o);
    o.health_check_ms = 1;
    o.command_timeout_ms = 200;
    o.connect_timeout_ms = 200;
    redis_conn *c = open_ok(bpt_redis_url(srv), &o);
    cr_assert_eq(incr(c, "n", &rc), 1);
    /* A frozen server keeps its socket open: only a reply that never comes reveals it. */
    kill(bpt_redis_pid(srv), SIGSTOP);
    util_sleep_ms(5); /* be idle longer than health_check_ms: that is the condition tested */
    int64_t t0 = bpt_now_ms();
    cr_assert_eq(redis_conn_check(c, &err), BP_E_UNAVAILABLE);
    cr_assert(strstr(err.msg, "no reply within 200 ms"), "%s", err.msg);
    cr_assert_lt(bpt_now_ms() - t0, 3000);
    kill(bpt_redis_pid(srv), SIGCONT);
    recover_ctx x = {.c = c};
    cr_assert(bpt_wait_for(incr_succeeds, &x, 5000));
    cr_assert_eq(x.value, 2);
    redis_conn_close(c);
}

static const char *const script_src = "return redis.call('INCRBY', KEYS[1], ARGV[1])";

Test(redis_conn, scripts_survive_restart_and_flush, .init = start_plain, .fini = teardown)
{
    redis_script s;
    const redis_script *all[] = {&s};
    redisReply *r = NULL;
    bp_error err = {0};
    const char *argv[] = {"counter", "5"};
    redis_script_init(&s, "incrby", script_src);
    /* our digest is the server's digest */
    r = bpt_redis_cmd(srv, "SCRIPT LOAD %s", script_src);
    cr_assert_str_eq(r->str, s.sha);
    freeReplyObject(r);
    r = bpt_redis_cmd(srv, "SCRIPT FLUSH");
    freeReplyObject(r);

    redis_conn *c = open_ok(bpt_redis_url(srv), NULL);
    /* not preloaded, cache empty: the NOSCRIPT fallback runs it */
    cr_assert_eq(redis_conn_eval(c, &s, 1, 2, argv, NULL, &r, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(r->integer, 5);
    freeReplyObject(r);

    cr_assert_eq(redis_conn_preload(c, all, 1, &err), BP_OK, "%s", err.msg);
    r = bpt_redis_cmd(srv, "SCRIPT EXISTS %s", s.sha);
    cr_assert_eq(r->element[0]->integer, 1);
    freeReplyObject(r);

    /* SCRIPT FLUSH behind our back, connection kept: fallback again, and it ran exactly once */
    r = bpt_redis_cmd(srv, "SCRIPT FLUSH");
    freeReplyObject(r);
    cr_assert_eq(redis_conn_eval(c, &s, 1, 2, argv, NULL, &r, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(r->integer, 10);
    freeReplyObject(r);

    /* Redis restarted: the script cache is empty; the reconnect preloads, so even a pipelined
     * EVALSHA (which has no fallback of its own) finds it. */
    bpt_redis_stop(srv);
    bpt_redis_restart(srv);
    redis_conn_drop(c); /* the next call reconnects without waiting for a failed command */
    cr_assert_eq(redis_conn_check(c, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(redis_conn_append_eval(c, &s, 1, 2, argv, NULL, &err), BP_OK);
    cr_assert_eq(redis_conn_append_eval(c, &s, 1, 2, argv, NULL, &err), BP_OK);
    redisReply *rs[2];
    cr_assert_eq(redis_conn_read_replies(c, rs, 2, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(rs[0]->type, REDIS_REPLY_INTEGER, "%s", rs[0]->str ? rs[0]->str : "");
    cr_assert_eq(rs[1]->integer, 10);
    freeReplyObject(rs[0]);
    freeReplyObject(rs[1]);

    /* a script that fails is a clear internal error naming the script */
    redis_script bad;
    redis_script_init(&bad, "broken", "return redis.call('NOSUCHCMD')");
    cr_assert_eq(redis_conn_eval(c, &bad, 0, 0, NULL, NULL, &r, &err), BP_E_INTERNAL);
    cr_assert(strstr(err.msg, "script broken"), "%s", err.msg);
    redis_conn_close(c);
}

Test(redis_conn, pipelines, .init = start_plain, .fini = teardown)
{
    redisReply *rs[100];
    bp_error err = {0};
    redis_conn *c = open_ok(bpt_redis_url(srv), NULL);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(redis_conn_append(c, &err, "INCR p"), BP_OK);
    }
    cr_assert_eq(redis_conn_pending(c), 100);
    /* a plain command in the middle of a pipeline is refused, not mixed in */
    cr_assert_eq(redis_conn_command(c, NULL, &err, "PING"), BP_E_STATE);
    cr_assert_eq(redis_conn_read_replies(c, rs, 100, &err), BP_OK, "%s", err.msg);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(rs[i]->integer, i + 1);
        freeReplyObject(rs[i]);
    }
    cr_assert_eq(redis_conn_pending(c), 0);
    /* error replies stay in their slot */
    cr_assert_eq(redis_conn_append(c, &err, "SET s x"), BP_OK);
    cr_assert_eq(redis_conn_append(c, &err, "INCR s"), BP_OK);
    cr_assert_eq(redis_conn_append(c, &err, "GET s"), BP_OK);
    cr_assert_eq(redis_conn_read_replies(c, rs, 3, &err), BP_OK);
    cr_assert_eq(redis_reply_status(rs[1], "INCR", &err), BP_E_INTERNAL);
    cr_assert_str_eq(rs[2]->str, "x");
    for (int i = 0; i < 3; i++) {
        freeReplyObject(rs[i]);
    }
    redis_conn_close(c);
}

Test(redis_conn, pipeline_broken_by_a_dead_server, .init = start_plain, .fini = teardown)
{
    redisReply *rs[2];
    bp_error err = {0};
    redis_conn *c = open_ok(bpt_redis_url(srv), NULL);
    cr_assert_eq(redis_conn_append(c, &err, "INCR p"), BP_OK);
    cr_assert_eq(redis_conn_append(c, &err, "INCR p"), BP_OK);
    bpt_redis_kill9(srv);
    cr_assert_eq(redis_conn_read_replies(c, rs, 2, &err), BP_E_UNAVAILABLE);
    cr_assert_null(rs[0]);
    cr_assert_null(rs[1]);
    cr_assert_eq(redis_conn_pending(c), 0);
    redis_conn_close(c);
}

Test(redis_conn, command_timeout_then_recovery, .init = start_plain, .fini = teardown)
{
    redis_conn_options o;
    bp_error err = {0};
    int rc;
    redis_conn_options_default(&o);
    o.command_timeout_ms = 200;
    redis_conn *c = open_ok(bpt_redis_url(srv), &o);
    /* A server that does not answer in time (here: a long blocking pop issued as an ordinary
     * command) is treated as unavailable and the connection is dropped. */
    int64_t t0 = bpt_now_ms();
    cr_assert_eq(redis_conn_command(c, NULL, &err, "BLPOP nothing 3"), BP_E_UNAVAILABLE);
    cr_assert(strstr(err.msg, "no reply within 200 ms"), "%s", err.msg);
    cr_assert_lt(bpt_now_ms() - t0, 2500);
    cr_assert_eq(incr(c, "n", &rc), 1, "rc=%d", rc);
    redis_conn_close(c);
}

typedef struct blocker {
    redis_conn *c;
    int rc;
    char value[32];
} blocker;

static void *block_pop(void *arg)
{
    blocker *b = arg;
    const char *argv[] = {"BLPOP", "jobs", "10"};
    redisReply *r = NULL;
    b->rc = redis_conn_command_blocking(b->c, 10000, 3, argv, NULL, &r, NULL);
    if (b->rc == BP_OK && r->type == REDIS_REPLY_ARRAY) {
        snprintf(b->value, sizeof b->value, "%s", r->element[1]->str);
    }
    if (r) {
        freeReplyObject(r);
    }
    return NULL;
}

static bool client_blocked(void *ud)
{
    redisReply *r = bpt_redis_cmd(ud, "INFO clients");
    bool yes = r && r->str && strstr(r->str, "blocked_clients:1");
    if (r) {
        freeReplyObject(r);
    }
    return yes;
}

Test(redis_conn, blocking_commands_and_interrupt, .init = start_plain, .fini = teardown)
{
    pthread_t t;
    blocker b = {0};
    bp_error err = {0};
    int rc;
    b.c = open_ok(bpt_redis_url(srv), NULL);

    /* woken by data */
    pthread_create(&t, NULL, block_pop, &b);
    cr_assert(bpt_wait_for(client_blocked, srv, 5000));
    redisReply *r = bpt_redis_cmd(srv, "RPUSH jobs j1");
    freeReplyObject(r);
    pthread_join(t, NULL);
    cr_assert_eq(b.rc, BP_OK);
    cr_assert_str_eq(b.value, "j1");

    /* interrupted from another thread: returns at once, connection usable afterwards */
    pthread_create(&t, NULL, block_pop, &b);
    cr_assert(bpt_wait_for(client_blocked, srv, 5000));
    int64_t t0 = bpt_now_ms();
    redis_conn_interrupt(b.c);
    pthread_join(t, NULL);
    cr_assert_eq(b.rc, BP_E_CANCELLED);
    cr_assert_lt(bpt_now_ms() - t0, 2000);
    cr_assert_eq(incr(b.c, "n", &rc), 1);
    cr_assert_eq(redis_conn_check(b.c, &err), BP_OK);
    redis_conn_close(b.c);
}

Test(redis_conn, pubsub_wait, .init = start_plain, .fini = teardown)
{
    redisReply *r = NULL;
    bp_error err = {0};
    redis_conn *c = open_ok(bpt_redis_url(srv), NULL);
    cr_assert_eq(redis_conn_command(c, &r, &err, "SUBSCRIBE chan"), BP_OK);
    freeReplyObject(r);
    redis_conn_set_subscribed(c, true);
    cr_assert_eq(redis_conn_wait_reply(c, 50, &r, &err), BP_E_TIMEOUT);
    cr_assert(redis_conn_is_up(c), "a quiet channel is not an outage");
    r = bpt_redis_cmd(srv, "PUBLISH chan hello");
    freeReplyObject(r);
    cr_assert_eq(redis_conn_wait_reply(c, 5000, &r, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_str_eq(r->element[0]->str, "message");
    cr_assert_str_eq(r->element[2]->str, "hello");
    freeReplyObject(r);
    redis_conn_close(c);
}
