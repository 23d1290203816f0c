/*
 * sys - diagnostics job types: sys.noop, sys.echo, sys.sleep.
 *
 * They do nothing useful on purpose: smoke checks (`betpipe run sys.echo --wait`), `inspect`
 * round trips, and benchmarks of the engine itself, where the job must cost nothing.
 */
#include <time.h>

#include "betpipe/betpipe.h"

static int run_noop(const bp_job *job, json_t **out_result, bp_error *err)
{
    (void)job;
    (void)err;
    *out_result = NULL;
    return BP_OK;
}

static int run_echo(const bp_job *job, json_t **out_result, bp_error *err)
{
    (void)err;
    *out_result = json_deep_copy(job->args);
    return *out_result ? BP_OK : bp_err(err, BP_E_NOMEM, "out of memory");
}

/* Sleep in short steps so that a revoke, the soft time limit or a shutdown stops it promptly. */
static int run_sleep(const bp_job *job, json_t **out_result, bp_error *err)
{
    const bp_host *h = job->host;
    double seconds = json_number_value(json_object_get(job->args, "seconds"));
    int64_t start = h->mono_ns(h);
    int64_t end = start + (int64_t)(seconds * 1e9);
    for (;;) {
        int64_t now = h->mono_ns(h);
        struct timespec step = {0, 10 * 1000000L};
        if (now >= end) {
            break;
        }
        if (h->cancelled(job)) {
            return bp_err(err, BP_E_CANCELLED, "sys.sleep interrupted after %.3f s of %.3f s",
                          (double)(now - start) / 1e9, seconds);
        }
        if (end - now < 10 * 1000000L) {
            step.tv_nsec = (long)(end - now);
        }
        nanosleep(&step, NULL);
        h->progress(job, (double)(h->mono_ns(h) - start) / (seconds * 1e9 + 1), NULL);
    }
    *out_result = json_pack("{s:f}", "slept_s", (double)(h->mono_ns(h) - start) / 1e9);
    return BP_OK;
}

static const bp_job_type sys_jobs[] = {
    {
        .struct_size = sizeof(bp_job_type),
        .name = "sys.noop",
        .description = "Do nothing (engine smoke test and benchmarks)",
        .queue = "default",
        .args_schema = "{\"type\": \"object\"}",
        .max_retries = 0,
        .run = run_noop,
    },
    {
        .struct_size = sizeof(bp_job_type),
        .name = "sys.echo",
        .description = "Return the args as the result",
        .queue = "default",
        .args_schema = "{\"type\": \"object\"}",
        .max_retries = 0,
        .run = run_echo,
    },
    {
        .struct_size = sizeof(bp_job_type),
        .name = "sys.sleep",
        .description = "Sleep for `seconds`, honouring revoke, time limits and shutdown",
        .queue = "default",
        .args_schema = "{\"type\": \"object\", \"additionalProperties\": false, "
                       "\"required\": [\"seconds\"], \"properties\": {\"seconds\": "
                       "{\"type\": \"number\", \"minimum\": 0, \"maximum\": 86400, "
                       "\"description\": \"how long to sleep\"}}}",
        .max_retries = 0,
        .run = run_sleep,
    },
};

static int sys_init(const bp_host *host, bp_registry *reg, void **out_state, bp_error *err)
{
    (void)host;
    *out_state = NULL;
    for (size_t i = 0; i < sizeof sys_jobs / sizeof sys_jobs[0]; i++) {
        int rc = reg->add_job_type(reg, &sys_jobs[i], err);
        if (rc != BP_OK) {
            return rc;
        }
    }
    return BP_OK;
}

static void sys_fini(void *state)
{
    (void)state;
}

BP_PLUGIN_DEFINE("sys", "1.0.0", "Diagnostics jobs: sys.noop, sys.echo, sys.sleep", sys_init,
                 sys_fini)
