/*
 * wake.h - cross-process wake-ups for the embedded broker.
 *
 * SQLite has no way to tell another process "a row changed", so every process that waits on the
 * embedded broker binds a unix datagram socket in the instance's run directory:
 *     <run_dir>/w-<pid>-<rand>.sock   a worker: woken by enqueue and revoke
 *     <run_dir>/d-<pid>-<rand>.sock   a client waiting for results: woken when jobs finish
 *     <run_dir>/e-<pid>-<rand>.sock   `betpipe monitor`: woken when events were written
 * After committing, the writer sends one byte to every socket of the right kind. Idle daemons
 * therefore block in poll() and start a job within a fraction of a millisecond of its enqueue,
 * with no polling. A socket whose owner died (ECONNREFUSED) is removed by the next sender.
 *
 * Thread-safety: wake_send may be called from any thread; a wake_listener is used by one thread.
 */
#ifndef BP_CORE_WAKE_H
#define BP_CORE_WAKE_H

#include "betpipe/status.h"

#define WAKE_KIND_WORK   'w'
#define WAKE_KIND_DONE   'd'
#define WAKE_KIND_EVENTS 'e'

typedef struct wake_listener wake_listener;
typedef struct wake_sender wake_sender;

/* Bind a listening socket of `kind` in run_dir (created if missing). */
int wake_listen(const char *run_dir, char kind, wake_listener **out, bp_error *err);
int wake_listener_fd(const wake_listener *l);
/* Read pending datagrams; returns the bitwise OR of WAKE_BIT(byte) over the bytes received
 * (0 when nothing was pending). */
#define WAKE_BIT(byte) (1u << ((unsigned)(byte)&31u))
unsigned wake_drain(wake_listener *l);
/* Close and unlink. */
void wake_listener_close(wake_listener *l);

/* A sender caches the directory listing and re-reads it only when the directory changes. */
int wake_sender_open(const char *run_dir, wake_sender **out, bp_error *err);
/* Send `byte` to every listener of `kind`. Never blocks, never fails the caller. */
void wake_send(wake_sender *s, char kind, char byte);
void wake_sender_close(wake_sender *s);

#endif
