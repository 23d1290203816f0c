/*
 * control.h - remote inspection and control of running daemons (Celery's inspect / control).
 *
 * Every daemon listens on a unix stream socket in the instance's run directory,
 * <run_dir>/c-<pid>-<rand>.sock. A client connects, writes one JSON request line
 *     {"cmd": "stats", "args": {...}, "destination": "host:pid:xxxx,..." | null}
 * and reads one JSON reply line {"worker": "<id>", "ok": true, "reply": ...} or
 * {"worker": "<id>", "ok": false, "error": "..."}. A daemon not named in `destination` answers
 * {"worker": "<id>", "skipped": true}. control_broadcast() asks every live daemon of the
 * instance and gathers the answers that arrive within the timeout.
 *
 * The socket is created with mode 0600 inside a 0700 directory: only the instance's owner can
 * control it.
 */
#ifndef BP_CORE_CONTROL_H
#define BP_CORE_CONTROL_H

#include <stdint.h>

#include <jansson.h>

#include "betpipe/status.h"

/* Answer one command: return a new JSON reply, or NULL with err filled. Called on the control
 * thread, one request at a time. */
typedef json_t *(*control_handler_fn)(void *ud, const char *cmd, const json_t *args, bp_error *err);

typedef struct control_server control_server;

int control_server_start(const char *run_dir, const char *worker_id, control_handler_fn fn,
                         void *ud, control_server **out, bp_error *err);
/* Stop serving and remove the socket. */
void control_server_stop(control_server *s);

/* Ask every daemon of the instance (or those in the comma-separated `destination`) and
 * collect replies for up to timeout_ms. *out_replies: {"<worker id>": reply-object, ...}
 * (new reference; empty when no daemon answered). */
int control_broadcast(const char *run_dir, const char *cmd, const json_t *args,
                      const char *destination, int64_t timeout_ms, json_t **out_replies,
                      bp_error *err);

#endif
