/*
 * redis_fixture.h - a real redis-server for one test, on a unix socket in a fresh temp dir.
 *
 * Each fixture runs its own `redis-server --port 0 --unixsocket <dir>/redis.sock` (never a TCP
 * port, so parallel test runs cannot collide) with persistence off by default. Tests stop it,
 * restart it on the same socket and data dir (to play "Redis restarted during a run"), or
 * kill -9 it. The server is started with PR_SET_PDEATHSIG, so it dies with the test process even
 * when an assertion aborts the test before bpt_redis_free() runs.
 *
 * All functions fail the current test (cr_assert) when the server cannot be started or stopped
 * as asked; they are for tests only and are not thread-safe (drive one fixture from one thread).
 */
#ifndef BP_TEST_REDIS_FIXTURE_H
#define BP_TEST_REDIS_FIXTURE_H

#include <stdbool.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

typedef struct bpt_redis_opts {
    bool aof;                     /* appendonly yes, appendfsync everysec */
    const char *requirepass;      /* password of the default user (NULL = none) */
    const char *acl_user;         /* an extra ACL user allowed everything (NULL = none) */
    const char *acl_password;     /* its password */
    const char *maxmemory;        /* e.g. "64mb" (NULL = unlimited) */
    const char *maxmemory_policy; /* e.g. "allkeys-lru" (NULL = the server default) */
} bpt_redis_opts;

typedef struct bpt_redis bpt_redis;

/* Start a server (opts may be NULL) and wait until it answers PING. */
bpt_redis *bpt_redis_start(const bpt_redis_opts *opts);
/* "unix://<dir>/redis.sock", without credentials. Valid while the fixture lives. */
const char *bpt_redis_url(const bpt_redis *r);
/* A URL for the same server with user info ("unix://user:pass@/path"); caller frees. */
char *bpt_redis_url_with(const bpt_redis *r, const char *user, const char *password);
const char *bpt_redis_socket(const bpt_redis *r);
const char *bpt_redis_dir(const bpt_redis *r);
pid_t bpt_redis_pid(const bpt_redis *r);
bool bpt_redis_running(bpt_redis *r);

/* SIGTERM (Redis flushes its AOF and exits), SIGKILL if it is still there after 10 s. */
void bpt_redis_stop(bpt_redis *r);
/* SIGKILL at once: no shutdown work at all. */
void bpt_redis_kill9(bpt_redis *r);
/* Start again with the same options on the same socket and data dir; waits for PING (after an
 * AOF load, for PING to stop answering LOADING). */
void bpt_redis_restart(bpt_redis *r);
/* Stop the server and remove its directory. NULL is fine. */
void bpt_redis_free(bpt_redis *r);

/* Run one command on a fresh admin connection (authenticated with the fixture's credentials).
 * Returns the reply (free with freeReplyObject) or NULL when the server could not be reached. */
redisReply *bpt_redis_cmd(bpt_redis *r, const char *fmt, ...);

#endif
