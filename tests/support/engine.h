/*
 * engine.h - helpers for integration tests that drive the real daemon and CLI on a temporary
 * instance: plugin dirs, starting/stopping daemons, reading job records in-process.
 */
#ifndef BP_TEST_ENGINE_H
#define BP_TEST_ENGINE_H

#include <stdbool.h>
#include <sys/types.h>

#include "app.h"
#include "support.h"

/* Point BETPIPE_PLUGIN_DIR (for this process and its children) at the shipped plugins plus the
 * test-only engine plugins. Call from a suite's init. */
void bpt_engine_env_setup(void);

/* Start `betpipe --data-dir DIR daemon <extra...>` (NULL-terminated), logging to DIR/daemon.log
 * (appended), and wait until it says it is ready. */
pid_t bpt_daemon_start(const char *data_dir, ...);

/* Open the instance in this process (broker + store + plugins). */
app *bpt_app_open(const char *data_dir);

/* Enqueue `type` with args given as JSON text; returns the id (static buffer per call site:
 * copy it). Fails the test on error. */
void bpt_enqueue(app *a, const char *type, const char *args_json, char out_id[BP_JOB_ID_SIZE]);

/* Wait until job `id` is final; returns it (caller frees) or NULL on timeout. */
job *bpt_wait_final(app *a, const char *id, int64_t timeout_ms);

/* Count lines of `file` starting with `prefix` and containing `id` (NULL = any). */
int bpt_count_lines(const char *file, const char *prefix, const char *id);

#endif
