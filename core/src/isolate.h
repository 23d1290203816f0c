/*
 * isolate.h - running a job in a process of its own.
 *
 * A job type flagged BP_JOB_F_ISOLATE (or configured "jobs": {"<type>": {"isolate": true}}, or
 * every type with "daemon": {"isolation": "all"}) runs in a fresh `betpipe` process, spawned with
 * posix_spawn (safe from a multi-threaded daemon, unlike a bare fork). The worker thread keeps
 * the lease and the heartbeat; the child opens the instance itself, runs the job through the
 * same code path as any other run, and reports on its stdout: progress lines, then one outcome
 * line. So:
 *   - a crash (SIGSEGV, abort, OOM kill) fails only that run, never the daemon;
 *   - a hard time limit ("time_limit") kills the child: FAILURE "hard time limit exceeded";
 *   - "max_memory" caps the child's address space (RLIMIT_AS);
 *   - `betpipe revoke ID --terminate` kills the child: REVOKED "terminated".
 * A plain revoke, the soft time limit and shutdown still reach the job cooperatively (SIGUSR1 /
 * SIGUSR2 set the child's cancellation flag).
 */
#ifndef BP_CORE_ISOLATE_H
#define BP_CORE_ISOLATE_H

#include <stdbool.h>

#include "app.h"
#include "pool.h"

/* Should this job run isolated, under the app's configuration? */
bool isolate_wanted(const app *a, const job *j, int type_flags);

/* Run `t` in a child process and fill *out. `p` may be NULL (inline run). */
void isolate_run(app *a, pool *p, pool_task *t, pool_outcome *out);

/* The child's side: `betpipe ... __exec-job` reads the job record (JSON) from stdin. Returns
 * the process exit code. */
int isolate_child_main(const config_overrides *ov);
/* Cap the process's address space (RLIMIT_AS) - the child's "max_memory". */
int isolate_limit_memory(int64_t bytes);

#endif
