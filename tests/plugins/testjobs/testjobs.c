/*
 * testjobs - job types that misbehave on purpose, to exercise the engine (test-only plugin):
 *   test.flaky   fails with BP_E_RETRY on its first `fail_times` attempts, then succeeds
 *   test.fail    fails at once (no retry) with the given message
 *   test.crash   crashes its process with SIGSEGV (the dead-letter path)
 *   test.hang    runs for `seconds`; checks cancellation only when `cooperative`
 *   test.fanout  enqueues `n` sys.echo jobs through host->enqueue and returns their ids
 *   test.record  appends "start"/"end" lines (job id, pid, monotonic ns) to `file`, sleeping
 *                `sleep_ms` between them: tests read the file to prove exactly-once and
 *                per-queue concurrency across daemons
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "betpipe/betpipe.h"

static int run_flaky(const bp_job *job, json_t **out_result, bp_error *err)
{
    int fail_times = (int)json_integer_value(json_object_get(job->args, "fail_times"));
    if (job->attempt <= fail_times) {
        return bp_err(err, BP_E_RETRY, "flaky failure on attempt %d of the first %d", job->attempt,
                      fail_times);
    }
    *out_result = json_pack("{s:i}", "succeeded_on_attempt", job->attempt);
    return BP_OK;
}

static int run_fail(const bp_job *job, json_t **out_result, bp_error *err)
{
    const char *msg = json_string_value(json_object_get(job->args, "message"));
    (void)out_result;
    return bp_err(err, BP_E_INVAL, "%s", msg ? msg : "failed on purpose");
}

static int run_crash(const bp_job *job, json_t **out_result, bp_error *err)
{
    (void)job;
    (void)out_result;
    (void)err;
    raise(SIGSEGV);
    return BP_E_INTERNAL;
}

static int run_hang(const bp_job *job, json_t **out_result, bp_error *err)
{
    const bp_host *h = job->host;
    double seconds = json_number_value(json_object_get(job->args, "seconds"));
    int cooperative = json_is_true(json_object_get(job->args, "cooperative"));
    int64_t end = h->mono_ns(h) + (int64_t)(seconds * 1e9);
    while (h->mono_ns(h) < end) {
        struct timespec step = {0, 5 * 1000000L};
        if (cooperative && h->cancelled(job)) {
            return bp_err(err, BP_E_CANCELLED, "test.hang stopped on request");
        }
        nanosleep(&step, NULL);
    }
    *out_result = json_pack("{s:b}", "finished", 1);
    return BP_OK;
}

static int run_fanout(const bp_job *job, json_t **out_result, bp_error *err)
{
    const bp_host *h = job->host;
    int n = (int)json_integer_value(json_object_get(job->args, "n"));
    json_t *ids = json_array();
    for (int i = 0; i < n; i++) {
        char id[BP_JOB_ID_SIZE];
        json_t *args = json_pack("{s:i, s:s}", "child", i, "parent", job->id);
        int rc = h->enqueue(h, "sys.echo", args, NULL, id, err);
        json_decref(args);
        if (rc != BP_OK) {
            json_decref(ids);
            return rc;
        }
        json_array_append_new(ids, json_string(id));
    }
    *out_result = json_pack("{s:o}", "children", ids);
    return BP_OK;
}

/* One write(2) per line on an O_APPEND descriptor: lines from concurrent processes never
 * interleave. */
static void record_line(const char *file, const char *what, const bp_job *job)
{
    char line[256];
    int fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int n;
    if (fd < 0) {
        return;
    }
    n = snprintf(line, sizeof line, "%s %s %d %lld %s\n", what, job->id, (int)getpid(),
                 (long long)job->host->mono_ns(job->host), job->queue);
    if (n > 0 && write(fd, line, (size_t)n) < 0) {
        n = -1;
    }
    close(fd);
}

static int run_record(const bp_job *job, json_t **out_result, bp_error *err)
{
    const bp_host *h = job->host;
    const char *file = json_string_value(json_object_get(job->args, "file"));
    int64_t sleep_ms = json_integer_value(json_object_get(job->args, "sleep_ms"));
    int64_t end;
    record_line(file, "start", job);
    end = h->mono_ns(h) + sleep_ms * 1000000;
    while (h->mono_ns(h) < end) {
        struct timespec step = {0, 2 * 1000000L};
        if (h->cancelled(job)) {
            record_line(file, "cancel", job);
            return bp_err(err, BP_E_CANCELLED, "test.record cancelled");
        }
        nanosleep(&step, NULL);
    }
    record_line(file, "end", job);
    *out_result = json_pack("{s:i}", "pid", (int)getpid());
    return BP_OK;
}

static const bp_job_type test_jobs[] = {
    {.struct_size = sizeof(bp_job_type),
     .name = "test.record",
     .description = "Record start/end lines in a file (exactly-once and concurrency checks)",
     .queue = "default",
     .args_schema = "{\"type\": \"object\", \"additionalProperties\": false, \"required\": "
                    "[\"file\"], \"properties\": {\"file\": {\"type\": \"string\"}, "
                    "\"sleep_ms\": {\"type\": \"integer\", \"minimum\": 0, \"default\": 0}, "
                    "\"n\": {\"type\": \"integer\"}}}",
     .max_retries = 0,
     .run = run_record},
    {.struct_size = sizeof(bp_job_type),
     .name = "test.flaky",
     .description = "Fail with a retryable error on the first fail_times attempts",
     .queue = "default",
     .args_schema = "{\"type\": \"object\", \"additionalProperties\": false, \"required\": "
                    "[\"fail_times\"], \"properties\": {\"fail_times\": {\"type\": \"integer\", "
                    "\"minimum\": 0}}}",
     .max_retries = 5,
     .run = run_flaky},
    {.struct_size = sizeof(bp_job_type),
     .name = "test.fail",
     .description = "Fail at once with a non-retryable error",
     .queue = "default",
     .args_schema = "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": "
                    "{\"message\": {\"type\": \"string\"}}}",
     .max_retries = 3,
     .run = run_fail},
    {.struct_size = sizeof(bp_job_type),
     .name = "test.crash",
     .description = "Crash the worker process with SIGSEGV",
     .queue = "default",
     .args_schema = NULL,
     .max_retries = 0,
     .run = run_crash},
    {.struct_size = sizeof(bp_job_type),
     .name = "test.hang",
     .description = "Run for `seconds`, checking cancellation only when cooperative",
     .queue = "default",
     .args_schema = "{\"type\": \"object\", \"additionalProperties\": false, \"required\": "
                    "[\"seconds\"], \"properties\": {\"seconds\": {\"type\": \"number\", "
                    "\"minimum\": 0}, \"cooperative\": {\"type\": \"boolean\", \"default\": "
                    "true}}}",
     .soft_time_limit_s = 1,
     .max_retries = 0,
     .run = run_hang},
    {.struct_size = sizeof(bp_job_type),
     .name = "test.fanout",
     .description = "Enqueue n sys.echo children",
     .queue = "default",
     .args_schema = "{\"type\": \"object\", \"additionalProperties\": false, \"required\": "
                    "[\"n\"], \"properties\": {\"n\": {\"type\": \"integer\", \"minimum\": 0, "
                    "\"maximum\": 1000}}}",
     .max_retries = 0,
     .run = run_fanout},
};

static int testjobs_init(const bp_host *host, bp_registry *reg, void **out_state, bp_error *err)
{
    (void)host;
    *out_state = NULL;
    for (size_t i = 0; i < sizeof test_jobs / sizeof test_jobs[0]; i++) {
        int rc = reg->add_job_type(reg, &test_jobs[i], err);
        if (rc != BP_OK) {
            return rc;
        }
    }
    return BP_OK;
}

static void testjobs_fini(void *state)
{
    (void)state;
}

BP_PLUGIN_DEFINE("testjobs", "1.0.0", "Misbehaving jobs for engine tests", testjobs_init,
                 testjobs_fini)
