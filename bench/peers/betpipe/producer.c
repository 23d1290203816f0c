/*
 * producer.c - the betpipe producer of the peer benchmark (protocol: bench/peers/lib/peerbench.py)
 *
 *   bench_peer_producer enqueue loop|bulk N   -> last line {"enqueue_s": s}
 *   bench_peer_producer latency RATE DURATION -> last line {"sent", "t_start_ns", "t_end_ns"}
 *
 * Jobs are bench.rec with {"enq_ns": CLOCK_MONOTONIC ns taken just before the submit call}.
 * loop: one client_enqueue() per job (validation, one script call, one round trip), as a user's
 * program would; bulk: jobs prepared and stored 1,000 per broker call (one pipelined round trip).
 * The instance comes from the environment like any betpipe client: BETPIPE_DATA_DIR,
 * BETPIPE_PLUGIN_DIR, and the broker from REDIS_URL (which the harness sets) or
 * BETPIPE_BROKER_URL. The broker connection is opened before the clock starts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "client.h"
#include "log.h"
#include "util.h"

#define BULK 1000

static void die(const char *what, const bp_error *err)
{
    fprintf(stderr, "bench_peer_producer: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

static json_t *stamp(void)
{
    return json_pack("{s:I}", "enq_ns", (json_int_t)util_mono_ns());
}

static void enqueue_one(app *a)
{
    bp_error err = {0};
    json_t *args = stamp();
    if (client_enqueue(a, "bench.rec", args, NULL, NULL, NULL, &err) != BP_OK) {
        die("enqueue", &err);
    }
    json_decref(args);
}

int main(int argc, char **argv)
{
    app *a = NULL;
    bp_error err = {0};
    config_overrides ov = {0};
    if (argc != 4) {
        fprintf(stderr, "usage: bench_peer_producer enqueue loop|bulk N | latency RATE DURATION\n");
        return 2;
    }
    log_set_level(BP_LOG_WARN);
    if (app_open(&ov, APP_ALL | APP_QUIET, &a, &err) != BP_OK) {
        die("open", &err);
    }
    if (strcmp(argv[1], "enqueue") == 0) {
        long n = strtol(argv[3], NULL, 10);
        int64_t t0 = util_mono_ns(), t1;
        if (strcmp(argv[2], "loop") == 0) {
            for (long i = 0; i < n; i++) {
                enqueue_one(a);
            }
        } else if (strcmp(argv[2], "bulk") == 0) {
            job *batch[BULK];
            int status[BULK];
            for (long done = 0; done < n; done += BULK) {
                int k = n - done < BULK ? (int)(n - done) : BULK;
                for (int i = 0; i < k; i++) {
                    json_t *args = stamp();
                    if (client_prepare(a, "bench.rec", args, NULL, NULL, &batch[i], &err) !=
                        BP_OK) {
                        die("prepare", &err);
                    }
                    json_decref(args);
                }
                if (a->broker->ops->enqueue(a->broker, batch, (size_t)k, status, &err) != BP_OK) {
                    die("bulk enqueue", &err);
                }
                for (int i = 0; i < k; i++) {
                    job_free(batch[i]);
                }
            }
        } else {
            fprintf(stderr, "bench_peer_producer: unknown mode %s\n", argv[2]);
            return 2;
        }
        t1 = util_mono_ns();
        printf("{\"enqueue_s\": %.6f, \"n\": %ld, \"mode\": \"%s\"}\n", (double)(t1 - t0) / 1e9, n,
               argv[2]);
    } else if (strcmp(argv[1], "latency") == 0) {
        double rate = strtod(argv[2], NULL), duration = strtod(argv[3], NULL);
        long total = (long)(rate * duration);
        int64_t step = (int64_t)(1e9 / rate);
        int64_t t_start = util_mono_ns() + 50000000, t_end;
        for (long i = 0; i < total; i++) {
            int64_t target = t_start + i * step;
            struct timespec ts = {(time_t)(target / 1000000000), (long)(target % 1000000000)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
            }
            enqueue_one(a);
        }
        t_end = util_mono_ns();
        printf("{\"sent\": %ld, \"t_start_ns\": \"%lld\", \"t_end_ns\": \"%lld\"}\n", total,
               (long long)t_start, (long long)t_end);
    } else {
        fprintf(stderr, "bench_peer_producer: unknown command %s\n", argv[1]);
        return 2;
    }
    app_close(a);
    return 0;
}
