/*
 * redis_fixture.c - a real redis-server per test (see redis_fixture.h).
 */
#include "redis_fixture.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support.h"

struct bpt_redis {
    bpt_redis_opts opts;
    char *dir;
    char sock[160];
    char url[192];
    char log[192];
    pid_t pid;
};

static char *dup_or_null(const char *s)
{
    char *d;
    if (!s) {
        return NULL;
    }
    d = strdup(s);
    cr_assert(d);
    return d;
}

/* Build the command line. The strings live in `store` (at most 40 args). */
static void build_argv(const bpt_redis *r, const char **argv, char store[][256])
{
    int n = 0, s = 0;
    argv[n++] = "redis-server";
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--unixsocket";
    argv[n++] = r->sock;
    argv[n++] = "--unixsocketperm";
    argv[n++] = "700";
    argv[n++] = "--dir";
    argv[n++] = r->dir;
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = r->opts.aof ? "yes" : "no";
    argv[n++] = "--appendfsync";
    argv[n++] = "everysec";
    argv[n++] = "--logfile";
    argv[n++] = r->log;
    argv[n++] = "--enable-debug-command";
    argv[n++] = "local";
    if (r->opts.requirepass) {
        argv[n++] = "--requirepass";
        argv[n++] = r->opts.requirepass;
    }
    if (r->opts.acl_user) {
        /* "--user NAME on >PASS ~* &* +@all": each rule is its own argument */
        snprintf(store[s], 256, ">%s", r->opts.acl_password ? r->opts.acl_password : "");
        argv[n++] = "--user";
        argv[n++] = r->opts.acl_user;
        argv[n++] = "on";
        argv[n++] = store[s++];
        argv[n++] = "~*";
        argv[n++] = "&*";
        argv[n++] = "+@all";
    }
    if (r->opts.maxmemory) {
        argv[n++] = "--maxmemory";
        argv[n++] = r->opts.maxmemory;
    }
    if (r->opts.maxmemory_policy) {
        argv[n++] = "--maxmemory-policy";
        argv[n++] = r->opts.maxmemory_policy;
    }
    argv[n] = NULL;
}

static redisContext *admin_connect(const bpt_redis *r)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectUnixWithTimeout(r->sock, tv);
    if (!c || c->err) {
        if (c) {
            redisFree(c);
        }
        return NULL;
    }
    redisSetTimeout(c, (struct timeval){10, 0});
    if (r->opts.requirepass) {
        redisReply *rep = redisCommand(c, "AUTH %s", r->opts.requirepass);
        bool ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep) {
            freeReplyObject(rep);
        }
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

static bool answers_ping(void *ud)
{
    bpt_redis *r = ud;
    redisContext *c;
    redisReply *rep;
    bool ok;
    int status;
    if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
        char *log = bpt_slurp(r->log);
        r->pid = -1;
        cr_assert_fail("redis-server exited during start-up; its log:\n%s", log ? log : "");
    }
    c = admin_connect(r);
    if (!c) {
        return false;
    }
    rep = redisCommand(c, "PING");
    ok = rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
    if (rep) {
        freeReplyObject(rep);
    }
    redisFree(c);
    return ok;
}

static void launch(bpt_redis *r)
{
    const char *argv[48];
    char store[4][256];
    pid_t parent = getpid();
    build_argv(r, argv, store);
    r->pid = fork();
    cr_assert(r->pid >= 0, "fork failed (errno %d)", errno);
    if (r->pid == 0) {
        /* Die with the test even when it aborts before tearing the fixture down. */
        bpt_die_with_parent(parent);
        if (!freopen("/dev/null", "r", stdin)) {
            _exit(126);
        }
        execvp("redis-server", (char *const *)(uintptr_t)argv);
        fprintf(stderr, "exec redis-server failed (errno %d): is redis-server installed?\n", errno);
        _exit(127);
    }
    cr_assert(bpt_wait_for(answers_ping, r, 15000),
              "redis-server (pid %d) did not answer PING on %s in time", (int)r->pid, r->sock);
}

bpt_redis *bpt_redis_start(const bpt_redis_opts *opts)
{
    bpt_redis *r = calloc(1, sizeof *r);
    cr_assert(r);
    if (opts) {
        r->opts.aof = opts->aof;
        r->opts.requirepass = dup_or_null(opts->requirepass);
        r->opts.acl_user = dup_or_null(opts->acl_user);
        r->opts.acl_password = dup_or_null(opts->acl_password);
        r->opts.maxmemory = dup_or_null(opts->maxmemory);
        r->opts.maxmemory_policy = dup_or_null(opts->maxmemory_policy);
    }
    r->dir = bpt_tmpdir("redis");
    cr_assert(strlen(r->dir) + 12 < sizeof r->sock, "temp dir path too long for a unix socket");
    snprintf(r->sock, sizeof r->sock, "%s/redis.sock", r->dir);
    snprintf(r->url, sizeof r->url, "unix://%s", r->sock);
    snprintf(r->log, sizeof r->log, "%s/redis.log", r->dir);
    launch(r);
    return r;
}

const char *bpt_redis_url(const bpt_redis *r)
{
    return r->url;
}

char *bpt_redis_url_with(const bpt_redis *r, const char *user, const char *password)
{
    size_t len =
        strlen(r->sock) + (user ? strlen(user) : 0) + (password ? strlen(password) : 0) + 32;
    char *u = malloc(len);
    cr_assert(u);
    snprintf(u, len, "unix://%s%s%s@%s", user ? user : "", password ? ":" : "",
             password ? password : "", r->sock);
    return u;
}

const char *bpt_redis_socket(const bpt_redis *r)
{
    return r->sock;
}

const char *bpt_redis_dir(const bpt_redis *r)
{
    return r->dir;
}

pid_t bpt_redis_pid(const bpt_redis *r)
{
    return r->pid;
}

bool bpt_redis_running(bpt_redis *r)
{
    if (r->pid <= 0) {
        return false;
    }
    if (bpt_exited(r->pid, NULL)) {
        r->pid = -1;
        return false;
    }
    return true;
}

void bpt_redis_stop(bpt_redis *r)
{
    if (r->pid > 0) {
        bpt_stop(r->pid, SIGTERM, 10000);
        r->pid = -1;
    }
}

void bpt_redis_kill9(bpt_redis *r)
{
    if (r->pid > 0) {
        bpt_stop(r->pid, SIGKILL, 10000);
        r->pid = -1;
    }
}

void bpt_redis_restart(bpt_redis *r)
{
    cr_assert(r->pid <= 0 || !bpt_redis_running(r), "bpt_redis_restart: the server still runs");
    /* A stale socket file from a killed server would be replaced by the new one anyway; remove
     * it so that a connection can only ever reach the new server. */
    unlink(r->sock);
    launch(r);
}

void bpt_redis_free(bpt_redis *r)
{
    if (!r) {
        return;
    }
    bpt_redis_stop(r);
    bpt_rm_rf(r->dir);
    free(r->dir);
    free((char *)(uintptr_t)r->opts.requirepass);
    free((char *)(uintptr_t)r->opts.acl_user);
    free((char *)(uintptr_t)r->opts.acl_password);
    free((char *)(uintptr_t)r->opts.maxmemory);
    free((char *)(uintptr_t)r->opts.maxmemory_policy);
    free(r);
}

redisReply *bpt_redis_cmd(bpt_redis *r, const char *fmt, ...)
{
    va_list ap;
    redisContext *c = admin_connect(r);
    redisReply *rep;
    if (!c) {
        return NULL;
    }
    va_start(ap, fmt);
    rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return rep;
}
