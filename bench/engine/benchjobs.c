/*
 * benchjobs - benchmark helper jobs:
 *   bench.stamp  returns how long after `enq_ns` (CLOCK_MONOTONIC of the producer, same host)
 *                the job started, so start latency is measured in nanoseconds, not the
 *                millisecond timestamps of the job record.
 *   bench.rec    a no-op that records {enq_ns, start_ns, end_ns} in $STATS_DIR/<pid>.rec, the
 *                file protocol of the peer benchmark harness (bench/peers/lib/peerbench.py), so
 *                betpipe is measured by the same harness, the same way, as Celery and BullMQ.
 *                end_ns is taken when the handler returns: the ack that follows is one exchange
 *                later, in the same round trip as the next lease.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "betpipe/betpipe.h"

static int run_stamp(const bp_job *job, json_t **out_result, bp_error *err)
{
    int64_t now = job->host->mono_ns(job->host);
    int64_t enq = json_integer_value(json_object_get(job->args, "enq_ns"));
    (void)err;
    *out_result = json_pack("{s:I}", "start_lat_ns", (json_int_t)(now - enq));
    return BP_OK;
}

/* The record file: int64 count (little endian on this machine, as the harness reads it), then
 * count x {enq, start, end}. A record is written before the count covers it. */
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t *rec_map;
static int64_t rec_cap;
static pid_t rec_pid;

static void rec_open(void)
{
    const char *dir = getenv("STATS_DIR");
    const char *max = getenv("BENCH_MAX_RECORDS");
    char path[4096];
    int fd;
    size_t bytes;
    rec_pid = getpid();
    if (!dir || !*dir) {
        return;
    }
    rec_cap = max ? strtoll(max, NULL, 10) : 100000;
    if (rec_cap <= 0) {
        rec_cap = 100000;
    }
    bytes = (size_t)(8 + 24 * rec_cap);
    snprintf(path, sizeof path, "%s/%d.rec", dir, (int)rec_pid);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return;
    }
    if (ftruncate(fd, (off_t)bytes) == 0) {
        void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        rec_map = m == MAP_FAILED ? NULL : m;
    }
    close(fd);
}

static int run_rec(const bp_job *job, json_t **out_result, bp_error *err)
{
    int64_t start = job->host->mono_ns(job->host);
    int64_t enq = json_integer_value(json_object_get(job->args, "enq_ns"));
    int64_t end;
    (void)err;
    *out_result = NULL;
    end = job->host->mono_ns(job->host);
    pthread_mutex_lock(&rec_lock);
    if (!rec_map || rec_pid != getpid()) {
        rec_open();
    }
    if (rec_map && rec_map[0] < rec_cap) {
        int64_t *r = rec_map + 1 + 3 * rec_map[0];
        r[0] = enq;
        r[1] = start;
        r[2] = end;
        __atomic_store_n(&rec_map[0], rec_map[0] + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&rec_lock);
    return BP_OK;
}

static const bp_job_type rec_type = {
    .struct_size = sizeof(bp_job_type),
    .name = "bench.rec",
    .description = "No-op recorded for the peer benchmark harness ($STATS_DIR/<pid>.rec)",
    .queue = "default",
    .args_schema = "{\"type\": \"object\", \"properties\": {\"enq_ns\": {\"type\": \"integer\"}}}",
    .max_retries = 0,
    .run = run_rec,
};

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
    int rc = reg->add_job_type(reg, &stamp, err);
    return rc == BP_OK ? reg->add_job_type(reg, &rec_type, err) : rc;
}

static void bench_fini(void *state)
{
    (void)state;
}

BP_PLUGIN_DEFINE("benchjobs", "1.0.0", "Benchmark helper jobs", bench_init, bench_fini)
