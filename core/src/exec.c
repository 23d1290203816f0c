/*
 * exec.c - running one job (see exec.h).
 */
#include "exec.h"

#include <stdlib.h>
#include <string.h>

#include "isolate.h"
#include "jsonschema.h"
#include "log.h"
#include "util.h"

static void set_error(pool_outcome *out, job_state state, const char *fmt, ...) BP_PRINTF(3, 4);

static void set_error(pool_outcome *out, job_state state, const char *fmt, ...)
{
    char buf[BP_ERROR_MSG_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    out->state = state;
    out->error = strdup(buf);
}

static _Thread_local const char *current_job_id;

const char *exec_current_job_id(void)
{
    return current_job_id;
}

static bool transient(int rc)
{
    return rc == BP_E_RETRY || rc == BP_E_UNAVAILABLE || rc == BP_E_TIMEOUT;
}

static void execute(app *a, pool *p, pool_task *t, pool_outcome *out, int progress_fd,
                    bool may_isolate)
{
    job *j = t->job;
    const registry_job *rj = registry_find_job(a->reg, j->type);
    json_t *args = NULL, *result = NULL;
    json_error_t jerr;
    bp_error err = {0};
    exec_runtime rt = {a, p, t, progress_fd};
    bp_job view;
    int64_t t0;
    int rc;

    memset(out, 0, sizeof *out);
    if (!rj) {
        set_error(out, JOB_FAILURE,
                  "no loaded plugin provides job type '%s' on worker %s (see `betpipe plugins`)",
                  j->type, a->worker_id);
        return;
    }
    if (may_isolate && isolate_wanted(a, j, rj->desc.flags)) {
        isolate_run(a, p, t, out);
        return;
    }
    args = json_loads(j->args, JSON_REJECT_DUPLICATES, &jerr);
    if (!args) {
        set_error(out, JOB_FAILURE, "stored args are not valid JSON: %s", jerr.text);
        return;
    }
    /* Checked again here: the job may have been enqueued by an older version whose schema
     * differed. A job never runs half-valid. */
    if (jsonschema_validate_at(rj->args_schema, args, "args", &err) != BP_OK) {
        set_error(out, JOB_FAILURE, "%s", err.msg);
        json_decref(args);
        return;
    }
    jsonschema_apply_defaults(rj->args_schema, args);

    view = (bp_job){
        .struct_size = sizeof(bp_job),
        .id = j->id,
        .type = j->type,
        .queue = j->queue,
        .args = args,
        .attempt = j->attempts,
        .max_retries = j->max_retries,
        .enqueued_at_ms = j->created_ms,
        .started_at_ms = j->started_ms,
        .soft_deadline_ms = t->soft_deadline_ms,
        .host = rj->host,
        .plugin_state = rj->plugin_state,
        .runtime = &rt,
    };
    log_debug("exec", "job started id=%s type=%s attempt=%d", j->id, j->type, j->attempts);
    t0 = util_mono_ns();
    current_job_id = j->id;
    rc = rj->desc.run(&view, &result, &err);
    current_job_id = NULL;
    int64_t ms = (util_mono_ns() - t0) / 1000000;

    if (rc == BP_OK) {
        out->state = JOB_SUCCESS;
        out->result = result ? json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (result && !out->result) {
            set_error(out, JOB_FAILURE, "result could not be serialised");
        }
        log_debug("exec", "job succeeded id=%s type=%s ms=%lld", j->id, j->type, (long long)ms);
    } else {
        const char *msg = err.msg[0] ? err.msg : bp_status_str(rc);
        int cancel = atomic_load(&t->cancel);
        if (rc == BP_E_CANCELLED && cancel == POOL_CANCEL_SHUTDOWN) {
            out->state = JOB_PENDING; /* handed back: it runs again after the restart */
            log_info("exec", "job interrupted by shutdown, handed back id=%s type=%s", j->id,
                     j->type);
        } else if (rc == BP_E_CANCELLED &&
                   (cancel == POOL_CANCEL_REVOKED || cancel == POOL_CANCEL_TERMINATE)) {
            set_error(out, JOB_REVOKED, "revoked while running: %s", msg);
        } else if (rc == BP_E_CANCELLED && t->soft_deadline_ms > 0 &&
                   util_now_ms() >= t->soft_deadline_ms) {
            set_error(out, JOB_FAILURE, "soft time limit exceeded (%.1f s): %s",
                      (double)j->soft_time_limit_ms / 1000.0, msg);
        } else if (transient(rc) && j->attempts <= j->max_retries) {
            int64_t delay = job_retry_delay_ms(&j->retry, j->attempts);
            out->state = JOB_RETRY;
            out->retry_at_ms = util_now_ms() + delay;
            set_error(out, JOB_RETRY, "%s (%s; retry %d of %d in %.1f s)", msg, bp_status_str(rc),
                      j->attempts, j->max_retries, (double)delay / 1000.0);
        } else if (transient(rc)) {
            set_error(out, JOB_FAILURE, "%s (%s; gave up after %d attempts)", msg,
                      bp_status_str(rc), j->attempts);
        } else {
            set_error(out, JOB_FAILURE, "%s", msg);
        }
        if (out->state == JOB_FAILURE) {
            log_warn("exec", "job failed id=%s type=%s attempt=%d error=%s", j->id, j->type,
                     j->attempts, out->error ? out->error : "");
        } else if (out->state == JOB_RETRY) {
            log_info("exec", "job will retry id=%s type=%s attempt=%d error=%s", j->id, j->type,
                     j->attempts, out->error ? out->error : "");
        }
    }
    json_decref(result);
    json_decref(args);
}

void exec_run(void *ud, pool_task *task, pool_outcome *out)
{
    app *a = ud;
    execute(a, a->pool, task, out, -1, true);
}

void exec_run_inline(app *a, pool_task *task, pool_outcome *out)
{
    execute(a, NULL, task, out, -1, true);
}

void exec_run_child(app *a, pool_task *task, pool_outcome *out, int progress_fd)
{
    execute(a, NULL, task, out, progress_fd, false);
}
