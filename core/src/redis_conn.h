/*
 * redis_conn.h - the one place in betpipe that owns hiredis.
 *
 * Everything that talks to Redis (the broker, the cache, the control channel) goes through a
 * redis_conn: a synchronous hiredis context plus the production behaviour hiredis leaves to its
 * users - URL parsing, timeouts, keepalive, AUTH (password or ACL user), SELECT, CLIENT SETNAME,
 * reconnection with capped exponential backoff and jitter, an idle health check, one log line
 * per outage, scripts by EVALSHA that survive a flushed script cache, and pipelining.
 *
 * Failure model. Every call that needs the server returns BP_E_UNAVAILABLE when Redis cannot be
 * reached, with a message that names the server (password shown as ***) and the cause, so a
 * caller can degrade (the cache answers "miss", the broker tells the pool to wait for a wake-up)
 * instead of failing hard. A broken connection is dropped at once; the next call reconnects by
 * itself - immediately the first time, then no sooner than the backoff allows, so a dead Redis
 * costs callers a fast error instead of a connect timeout on every call. Nothing is retried
 * behind the caller's back: a command whose reply was lost may or may not have run, and only the
 * caller knows whether running it twice is safe. The exceptions are checks made before a command
 * is sent, whose failure means it was never sent, so reconnecting once and sending it is safe: a
 * socket with no reply outstanding that polls readable was closed by the server (one poll(2),
 * every command), and a PING on a connection idle for health_check_ms (half-open TCP). That is
 * what makes a Redis restart during a quiet period invisible to callers.
 *
 * Thread-safety: a redis_conn is used by one thread at a time (callers that share one serialise
 * with their own lock, or keep one per thread as the broker's pool does). The exception is
 * redis_conn_interrupt(), which may be called from any thread. URL helpers and script objects
 * are immutable after init and may be shared freely.
 *
 * hiredis 0.14 (Debian 12) has no TLS: rediss:// URLs are refused with a clear message.
 *
 * Signals: hiredis writes with write(2), so a server that went away would raise SIGPIPE. The
 * first redis_conn_open() sets SIGPIPE to SIG_IGN when it is still at its default (writes then
 * fail with EPIPE and become BP_E_UNAVAILABLE); a handler the program installed is left alone.
 */
#ifndef BP_CORE_REDIS_CONN_H
#define BP_CORE_REDIS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "betpipe/status.h"

/* ---- URLs ---------------------------------------------------------------------------------- */

/*
 * A parsed Redis URL. Accepted forms:
 *   redis://[[user]:password@]host[:port][/db]          host may be [ipv6]; port 6379, db 0
 *   rediss://...                                          parsed, then refused (no TLS here)
 *   unix://[[user]:password@]/path/redis.sock[?db=N]
 * Query parameters on either form: db=N, password=..., username=... (percent-encoded like the
 * user info). Anything else is an error that names the parameter.
 */
typedef struct redis_url {
    bool unix_socket;
    bool tls;       /* rediss:// */
    char *host;     /* TCP host, without brackets; NULL for unix */
    int port;       /* TCP port */
    char *path;     /* unix socket path; NULL for TCP */
    int db;         /* SELECT this database after connecting (0 = leave as is) */
    char *user;     /* ACL user, NULL = the default user */
    char *password; /* NULL = no AUTH */
} redis_url;

/* Parse `url` into *out (owned by the caller: free with redis_url_clear). Errors are BP_E_CONFIG
 * with a message that quotes the URL with its password replaced by "***". */
int redis_url_parse(const char *url, redis_url *out, bp_error *err);
void redis_url_clear(redis_url *u);

/* Copy `url` into buf with any password (user info or password= parameter) replaced by "***".
 * Works on malformed URLs too, so error paths can always use it. */
void redis_url_redact(const char *url, char *buf, size_t len);

/* Build a redis:// URL (new heap string in *out_url) from the seed settings REDIS_HOST,
 * REDIS_PORT, REDIS_DB and REDIS_PASSWORD given as strings (port, db, password may be NULL).
 * A host that starts with '/' is a unix socket path and gives a unix:// URL. The password is
 * percent-encoded. BP_E_CONFIG names the bad setting. */
int redis_url_from_parts(const char *host, const char *port, const char *db, const char *password,
                         char **out_url, bp_error *err);
/* The same from the process environment. BP_E_NOTFOUND (and *out_url NULL) when REDIS_HOST is
 * not set. */
int redis_url_from_env(char **out_url, bp_error *err);

/* ---- connections --------------------------------------------------------------------------- */

typedef struct redis_conn_options {
    int64_t connect_timeout_ms; /* TCP connect (default 5000) */
    int64_t command_timeout_ms; /* socket read/write timeout per command (default 5000) */
    bool keepalive;             /* SO_KEEPALIVE on TCP connections (default true) */
    int64_t backoff_min_ms;     /* first delay after a failed reconnect (default 100) */
    int64_t backoff_max_ms;     /* cap (default 5000); each delay gets equal jitter */
    int64_t health_check_ms;    /* PING before a command when idle this long (default 15000,
                                   0 = never) */
    bool lazy;                  /* redis_conn_open succeeds while Redis is down (default false:
                                   fail fast) */
    const char *client_name;    /* CLIENT SETNAME (default "betpipe"); copied */
    const char *log_component;  /* log component (default "redis"); copied */
} redis_conn_options;

void redis_conn_options_default(redis_conn_options *o);

typedef struct redis_conn redis_conn;

/* Open a connection to `url` and connect now. Returns BP_E_CONFIG for a bad URL, an AUTH
 * failure or a refused rediss://, BP_E_UNAVAILABLE when the server cannot be reached (unless
 * opts->lazy). opts may be NULL for the defaults. The new connection is owned by the caller. */
int redis_conn_open(const char *url, const redis_conn_options *opts, redis_conn **out,
                    bp_error *err);
void redis_conn_close(redis_conn *c);

/* The URL with its password masked, for messages. Valid while c lives. */
const char *redis_conn_name(const redis_conn *c);
/* Is the connection established right now? (No I/O.) */
bool redis_conn_is_up(const redis_conn *c);
/* Milliseconds until the next reconnect attempt is allowed (0 when up or allowed now). */
int64_t redis_conn_retry_in_ms(const redis_conn *c);
/* Number of successful (re)connections so far: callers compare it to notice a reconnect (their
 * subscriptions, client ids ... are gone). */
uint64_t redis_conn_generation(const redis_conn *c);

/* Make the connection usable: reconnect when down and the backoff allows, PING when idle past
 * health_check_ms. BP_OK when up afterwards. */
int redis_conn_check(redis_conn *c, bp_error *err);

/* Drop the connection now (the next call reconnects). */
void redis_conn_drop(redis_conn *c);
/* Make a call blocked in redis_conn_command_blocking()/redis_conn_wait_reply() on c return
 * BP_E_CANCELLED promptly. Safe from any thread and from a signal handler. */
void redis_conn_interrupt(redis_conn *c);

/* Run one command (printf-like, see hiredis) and return its reply in *out (free with
 * freeReplyObject). An error reply is turned into a status (see redis_reply_status) with the
 * server's message and *out is NULL. out may be NULL when the reply does not matter. */
int redis_conn_command(redis_conn *c, redisReply **out, bp_error *err, const char *fmt, ...);
int redis_conn_command_argv(redis_conn *c, int argc, const char **argv, const size_t *lens,
                            redisReply **out, bp_error *err);

/* A command that may legitimately block on the server for up to block_ms (BZPOPMIN, BLMOVE,
 * BLPOP ...). The reply is awaited for block_ms + command_timeout_ms. Returns BP_E_CANCELLED when
 * redis_conn_interrupt() is called meanwhile (the connection is then dropped: its reply is
 * still in flight). */
int redis_conn_command_blocking(redis_conn *c, int64_t block_ms, int argc, const char **argv,
                                const size_t *lens, redisReply **out, bp_error *err);

/* Wait up to timeout_ms for the next reply the server pushes (pub/sub messages on a subscribed
 * connection). BP_E_TIMEOUT when none came (the connection stays usable), BP_E_CANCELLED on
 * redis_conn_interrupt(). */
int redis_conn_wait_reply(redis_conn *c, int64_t timeout_ms, redisReply **out, bp_error *err);

/* Mark the connection as subscribed (pub/sub): the idle health check is skipped, since a
 * subscribed connection may not run ordinary commands. Cleared by a reconnect. */
void redis_conn_set_subscribed(redis_conn *c, bool on);

/* ---- pipelining ---------------------------------------------------------------------------- */

/* Queue commands without waiting (reconnecting first if needed), then read all their replies in
 * order with one call. Nothing is sent until redis_conn_read_replies. If the connection breaks,
 * every queued command is lost and the read reports BP_E_UNAVAILABLE: the commands may or may
 * not have run. */
int redis_conn_append(redis_conn *c, bp_error *err, const char *fmt, ...);
int redis_conn_append_argv(redis_conn *c, int argc, const char **argv, const size_t *lens,
                           bp_error *err);
/* Number of commands queued and not read yet. */
size_t redis_conn_pending(const redis_conn *c);
/* Read exactly n replies (n must equal redis_conn_pending) into out[0..n-1]. Error replies are
 * returned as they are (check them with redis_reply_status); on a transport failure every slot is
 * NULL and BP_E_UNAVAILABLE is returned. Free each reply with freeReplyObject. */
int redis_conn_read_replies(redis_conn *c, redisReply **out, size_t n, bp_error *err);

/* ---- scripts ------------------------------------------------------------------------------- */

/* A Lua script known by its SHA-1. Initialise once (the digest is computed locally) and share. */
typedef struct redis_script {
    const char *name;   /* for messages */
    const char *source; /* borrowed: must outlive the script (usually a string literal) */
    char sha[41];
} redis_script;

void redis_script_init(redis_script *s, const char *name, const char *source);

/* Scripts to SCRIPT LOAD on every (re)connect, so a Redis restart never reaches callers as
 * NOSCRIPT. The array is borrowed and must outlive the connection. Loads them now when up. */
int redis_conn_preload(redis_conn *c, const redis_script *const *scripts, size_t n, bp_error *err);

/* EVALSHA with the NOSCRIPT fallback: when the server does not know the script (its cache was
 * flushed without a reconnect), load it and run it again - safe, since NOSCRIPT means it did not
 * run. argv holds the keys (nkeys of them) then the arguments. */
int redis_conn_eval(redis_conn *c, const redis_script *s, int nkeys, int argc, const char **argv,
                    const size_t *lens, redisReply **out, bp_error *err);
/* Queue an EVALSHA in the pipeline. A NOSCRIPT reply in the batch can be redone with
 * redis_conn_eval (the script did not run). */
int redis_conn_append_eval(redis_conn *c, const redis_script *s, int nkeys, int argc,
                           const char **argv, const size_t *lens, bp_error *err);

/* ---- replies ------------------------------------------------------------------------------- */

/* BP_OK for a non-error reply; for an error reply the status its prefix maps to:
 *   LOADING, BUSY, MASTERDOWN, READONLY, TRYAGAIN, CLUSTERDOWN -> BP_E_UNAVAILABLE (transient)
 *   OOM -> BP_E_LIMIT; NOAUTH, WRONGPASS, NOPERM -> BP_E_CONFIG; NOSCRIPT -> BP_E_NOTFOUND
 *   anything else (a bug in a script, a wrong type) -> BP_E_INTERNAL
 * with err filled as "<what>: <server message>". */
int redis_reply_status(const redisReply *r, const char *what, bp_error *err);
bool redis_reply_is_noscript(const redisReply *r);

#endif
