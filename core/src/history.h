/*
 * history.h - mirrors every job that reaches a final state into the store's job history.
 *
 * The broker keeps finished records only for result_expires (and a Redis broker can be
 * flushed); the history is the permanent record that reports and dashboards read. In the daemon
 * the writer is asynchronous: the broker's on_final hook only clones the record into a queue,
 * and a thread writes batches (one transaction per batch), so the hot path never waits on the
 * store. In short-lived CLI processes the writer is synchronous.
 */
#ifndef BP_CORE_HISTORY_H
#define BP_CORE_HISTORY_H

#include <stdbool.h>

#include "job.h"
#include "store.h"

typedef struct history history;

int history_new(store *s, bool async, history **out, bp_error *err);
/* Record a final job (cloned). Thread-safe. Suitable as broker_options.on_final. */
void history_on_final(void *ud, const job *j);
/* Write everything queued so far; returns when it is in the store. */
void history_flush(history *h);
/* Flush and stop. */
void history_free(history *h);

#endif
