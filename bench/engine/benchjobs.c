/*
 * benchjobs - bench.stamp: returns how long after `enq_ns` (CLOCK_MONOTONIC of the producer, same
 * host) the job started, so start latency is measured in nanoseconds, not the millisecond
 * timestamps of the job record.
 */
#include "betpipe/betpipe.h"

static int run_stamp(const bp_job *job, json_t **out_result, bp_error *err)
{
    int64_t now = job->host->mono_ns(job->host);
    int64_t enq = json_integer_value(json_object_get(job->args, "enq_ns"));
    (void)err;
    *out_result = json_pack("{s:I}", "start_lat_ns", (json_int_t)(now - enq));
    return BP_OK;
}

static const bp_job_type stamp = {
    .struct_size = sizeof(bp_job_type),
    .name = "bench.stamp",
    .description = "Report start latency from the producer's monotonic timestamp",
    .queue = "default",
    .args_schema = "{\"type\": \"object\", \"required\": [\"enq_ns\"], \"properties\": "
                   "{\"enq_ns\": {\"type\": \"integer\"}}}",
    .max_retries = 0,
    .run = run_stamp,
};

static int bench_init(const bp_host *host, bp_registry *reg, void **out_state, bp_error *err)
{
    (void)host;
    *out_state = NULL;
    return reg->add_job_type(reg, &stamp, err);
}

static void bench_fini(void *state)
{
    (void)state;
}

BP_PLUGIN_DEFINE("benchjobs", "1.0.0", "Benchmark helper jobs", bench_init, bench_fini)
