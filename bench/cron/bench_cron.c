/*
 * bench_cron.c - how long cron_next, cron_parse and the tz queries take.
 *
 * Each case times single calls (CLOCK_MONOTONIC around each call, ~20 ns of overhead included)
 * over `--ops` calls whose `after` instants are spread pseudo-randomly over a year, so the
 * figures cover ordinary days, DST days and, for 2040, the POSIX-footer path. Prints one JSON
 * line per case: mean, p50, p99 and max in nanoseconds. Target (issue 5 brief): well under
 * 10 us for a typical next fire.
 *
 *   bench/cron.sh                 (builds a Release tree and runs this)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "tz.h"
#include "util.h"

static uint64_t rng = 0x2545F4914F6CDD1DULL;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void report(const char *label, int64_t *ns, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += (double)ns[i];
    }
    qsort(ns, n, sizeof *ns, cmp_i64);
    printf("{\"case\":\"%s\",\"ops\":%zu,\"mean_ns\":%.0f,\"p50_ns\":%lld,\"p99_ns\":%lld,"
           "\"max_ns\":%lld}\n",
           label, n, sum / (double)n, (long long)ns[n / 2], (long long)ns[n * 99 / 100],
           (long long)ns[n - 1]);
    fflush(stdout);
}

typedef struct next_case {
    const char *expr, *zone;
    int year; /* `after` is spread over this year */
} next_case;

static const next_case next_cases[] = {
    {"*/15 * * * *", "Europe/London", 2024},
    {"0 2 * * *", "Europe/London", 2024},
    {"30 1 * * *", "Europe/London", 2024},
    {"0 3 * * MON", "America/New_York", 2024},
    {"0 * * * *", "America/New_York", 2040},
    {"0 8 * * 1-5", "Australia/Lord_Howe", 2024},
    {"0 0 1 * MON", "UTC", 2024},
    {"0 0 29 2 *", "UTC", 2025},
    {"0 0 29 2 *", "Europe/London", 2025},
    {"0 0 30 2 *", "Europe/London", 2024},
};

int main(int argc, char **argv)
{
    size_t ops = 200000;
    int64_t *ns;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--ops") == 0) {
            ops = (size_t)strtoull(argv[i + 1], NULL, 10);
        }
    }
    if (ops < 100 || !(ns = malloc(ops * sizeof *ns))) {
        fprintf(stderr, "bench_cron: --ops must be >= 100\n");
        return 2;
    }
    for (size_t c = 0; c < sizeof next_cases / sizeof next_cases[0]; c++) {
        const next_case *k = &next_cases[c];
        const tz *z = NULL;
        cron_expr e;
        bp_error err = {0};
        char label[96];
        int64_t year_start = tz_days_from_civil(k->year, 1, 1) * 86400, sink = 0;
        if (tz_get(k->zone, &z, &err) != BP_OK || cron_parse(k->expr, &e, &err) != BP_OK) {
            fprintf(stderr, "bench_cron: %s\n", err.msg);
            return 1;
        }
        /* never-firing searches scan 8 years each: fewer of them keep the run short */
        size_t n = strcmp(k->expr, "0 0 30 2 *") == 0 ? ops / 20 : ops;
        for (size_t i = 0; i < n; i++) {
            int64_t after = year_start + (int64_t)(next_rand() % (366ULL * 86400)), out = 0;
            int64_t t0 = now_ns();
            int rc = cron_next(&e, z, after, &out);
            ns[i] = now_ns() - t0;
            sink += rc == BP_OK ? out : rc;
        }
        snprintf(label, sizeof label, "cron_next %s @ %s %d", k->expr, k->zone, k->year);
        report(label, ns, n);
        if (sink == 42) {
            puts("");
        }
    }
    /* parsing */
    {
        const char *exprs[] = {"*/15 * * * *", "0 2 * * *",
                               "1-30/5,59 1,13 1-7 JAN-MAR,dec mon-FRI", "@weekly"};
        cron_expr e;
        for (size_t i = 0; i < ops; i++) {
            int64_t t0 = now_ns();
            cron_parse(exprs[i % 4], &e, NULL);
            ns[i] = now_ns() - t0;
        }
        report("cron_parse (mixed)", ns, ops);
    }
    /* zone queries */
    {
        const tz *z = NULL;
        int64_t base = tz_days_from_civil(2024, 1, 1) * 86400, sink = 0;
        tz_get("Europe/London", &z, NULL);
        for (size_t i = 0; i < ops; i++) {
            int32_t off;
            int64_t t = base + (int64_t)(next_rand() % (366ULL * 86400));
            int64_t t0 = now_ns();
            tz_offset_at(z, t, &off, NULL, NULL);
            ns[i] = now_ns() - t0;
            sink += off;
        }
        report("tz_offset_at Europe/London 2024 (table)", ns, ops);
        base = tz_days_from_civil(2040, 1, 1) * 86400;
        for (size_t i = 0; i < ops; i++) {
            int32_t off;
            int64_t t = base + (int64_t)(next_rand() % (366ULL * 86400));
            int64_t t0 = now_ns();
            tz_offset_at(z, t, &off, NULL, NULL);
            ns[i] = now_ns() - t0;
            sink += off;
        }
        report("tz_offset_at Europe/London 2040 (footer)", ns, ops);
        for (size_t i = 0; i < ops; i++) {
            tz_local_time lt;
            int64_t cand[2];
            int n;
            tz_local_from_seconds(base + (int64_t)(next_rand() % (366ULL * 86400)), &lt);
            int64_t t0 = now_ns();
            tz_local_to_utc(z, &lt, cand, &n, NULL);
            ns[i] = now_ns() - t0;
            sink += n;
        }
        report("tz_local_to_utc Europe/London 2040", ns, ops);
        if (sink == 42) {
            puts("");
        }
    }
    free(ns);
    return 0;
}
