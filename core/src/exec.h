/*
 * exec.h - running one job: finding its type, checking its args, calling the plugin, and
 * turning the plugin's status into the job's next state (success, retry with backoff, failure,
 * revoked, or handed back on shutdown).
 */
#ifndef BP_CORE_EXEC_H
#define BP_CORE_EXEC_H

#include "app.h"
#include "pool.h"

/* What bp_job.runtime points to while a job runs. */
typedef struct exec_runtime {
    app *app;
    pool *pool; /* NULL when the job runs inline in a CLI process */
    pool_task *task;
    int progress_fd; /* >= 0 in an isolated child: progress goes to the parent as lines */
} exec_runtime;

/* pool_run_fn for the daemon: ud is the app. */
void exec_run(void *ud, pool_task *task, pool_outcome *out);

/* Run a task outside a pool (inline `run --wait`). */
void exec_run_inline(app *a, pool_task *task, pool_outcome *out);

/* Run a task inside an isolated child process (never isolates again); progress is written to
 * progress_fd as JSON lines. */
void exec_run_child(app *a, pool_task *task, pool_outcome *out, int progress_fd);

/* The id of the job running on the calling thread, or NULL (fan-out records it as parent). */
const char *exec_current_job_id(void);

#endif
