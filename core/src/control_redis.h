/*
 * control_redis.h - `betpipe inspect` / `betpipe control` carried by Redis, so that every daemon
 * sharing the broker answers, on whichever host it runs. Same requests, same handler and same
 * replies as the unix-socket transport of control.h; only the carrier differs.
 *
 * Protocol (P = the broker's key prefix):
 *   client  PUBLISH P:control {"id", "cmd", "args", "destination", "reply_to", "ttl_ms"}
 *           PUBLISH answers how many daemons received the request: that many replies to wait for.
 *   daemon  answers {"worker", "ok", "reply" | "error"} - or {"worker", "skipped": true} when the
 *           request names other workers - with RPUSH reply_to (P:reply:<id>) and PEXPIRE ttl_ms,
 *           so an abandoned reply list never outlives the request.
 *   client  BLPOP reply_to until every receiver answered or the timeout passed, then DEL it.
 * Pub/sub is right for the request (a daemon that is down is, correctly, not asked) and a list
 * for the replies (they wait for the client, whose BLPOP may start after a fast daemon replied).
 *
 * Thread-safety: the server runs its own thread and calls the handler from it, one request at a
 * time; the caller serialises with any other thread that calls the same handler.
 */
#ifndef BP_CORE_CONTROL_REDIS_H
#define BP_CORE_CONTROL_REDIS_H

#include <stdint.h>

#include <jansson.h>

#include "betpipe/status.h"
#include "control.h"

typedef struct control_redis_server control_redis_server;

/* Subscribe to the control channel of the Redis broker at `broker_url` (a redis:// or unix://
 * broker URL, with its optional prefix= parameter) and answer requests with fn. The connection
 * is lazy: a Redis that is down now is joined when it comes back. */
int control_redis_server_start(const char *broker_url, const char *worker_id, control_handler_fn fn,
                               void *ud, control_redis_server **out, bp_error *err);
/* Stop answering and free. NULL is fine. */
void control_redis_server_stop(control_redis_server *s);

/* Ask every daemon subscribed on that broker (or those in the comma-separated `destination`)
 * and collect the replies that arrive within timeout_ms. *out_replies is like
 * control_broadcast()'s: {"<worker id>": reply-object, ...} (new reference). BP_E_UNAVAILABLE
 * when Redis cannot be reached. */
int control_redis_broadcast(const char *broker_url, const char *cmd, const json_t *args,
                            const char *destination, int64_t timeout_ms, json_t **out_replies,
                            bp_error *err);

#endif
