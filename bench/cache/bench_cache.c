/*
 * bench_cache.c - hit-path throughput and latency of the typed cache (cache_get / cache_set as a
 * plugin calls them: canonical key from a filters object, JSON value encode/decode).
 *
 *   bench_cache --backend memory|redis [--url URL] [--threads T] [--ops N] [--keys K]
 *               [--value-bytes B] [--label TEXT]
 *
 * The cache is prefilled with K entries of type "odds" (values of about B bytes, below the
 * compression threshold), then T threads each run N operations on random keys, timing every
 * operation with CLOCK_MONOTONIC. Prints one JSON line per phase (set, get):
 *   {"label":..., "backend":..., "op":"get", "threads":T, "ops":..., "ops_per_s":...,
 *    "p50_us":..., "p99_us":..., "p999_us":..., "max_us":..., "hit_rate":..., "blob_bytes":...}
 * Not a test: it asserts nothing about speed. bench/cache.sh runs it beside redis-benchmark.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cache.h"
#include "log.h"
#include "util.h"

typedef struct bench_opts {
    const char *backend;
    const char *url;
    const char *label;
    int threads;
    long ops;
    int keys;
    int value_bytes;
} bench_opts;

typedef struct worker {
    cache *c;
    const bench_opts *o;
    int is_get;
    uint64_t seed;
    json_t *value;
    int64_t *lat_ns; /* one per op */
    long hits;
    int failed;
    pthread_barrier_t *start;
} worker;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static json_t *make_value(int bytes)
{
    /* an odds-like object padded to about `bytes` of JSON */
    json_t *v = json_pack("{s:f, s:f, s:f, s:s}", "home", 1.95, "draw", 3.40, "away", 4.20, "book",
                          "pinnacle");
    char *text = json_dumps(v, JSON_COMPACT);
    int have = (int)strlen(text);
    free(text);
    if (bytes > have + 10) {
        int n = bytes - have - 10;
        char *pad = malloc((size_t)n + 1);
        memset(pad, 'x', (size_t)n);
        pad[n] = '\0';
        json_object_set_new(v, "pad", json_string(pad));
        free(pad);
    }
    return v;
}

static void *run_worker(void *p)
{
    worker *w = p;
    json_t *f = json_object();
    json_t *id = json_integer(0);
    json_object_set(f, "match", id);
    json_object_set_new(f, "market", json_string("1x2"));
    pthread_barrier_wait(w->start);
    for (long i = 0; i < w->o->ops; i++) {
        json_t *out = NULL;
        int64_t t0, t1;
        int rc;
        json_integer_set(id, (json_int_t)(next_rand(&w->seed) % (uint64_t)w->o->keys));
        t0 = now_ns();
        if (w->is_get) {
            rc = cache_get(w->c, "odds", f, &out, NULL);
        } else {
            rc = cache_set(w->c, "odds", f, w->value, NULL);
        }
        t1 = now_ns();
        w->lat_ns[i] = t1 - t0;
        if (rc == BP_OK) {
            w->hits++;
            json_decref(out);
        } else if (!w->is_get || rc != BP_E_NOTFOUND) {
            w->failed = 1;
        }
    }
    json_decref(id);
    json_decref(f);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_us(const int64_t *sorted, long n, double q)
{
    long i = (long)(q * (double)(n - 1) + 0.5);
    return (double)sorted[i] / 1000.0;
}

static int run_phase(cache *c, const bench_opts *o, int is_get, json_t *value, size_t blob_bytes)
{
    worker *ws = calloc((size_t)o->threads, sizeof *ws);
    pthread_t *th = calloc((size_t)o->threads, sizeof *th);
    long total = o->ops * o->threads, hits = 0, k = 0;
    int64_t *all = malloc((size_t)total * sizeof *all), t0, t1;
    pthread_barrier_t start;
    int failed = 0;
    if (!ws || !th || !all) {
        fprintf(stderr, "bench_cache: out of memory\n");
        return 1;
    }
    pthread_barrier_init(&start, NULL, (unsigned)o->threads + 1);
    for (int i = 0; i < o->threads; i++) {
        ws[i] = (worker){.c = c,
                         .o = o,
                         .is_get = is_get,
                         .seed = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1),
                         .value = value,
                         .start = &start};
        ws[i].lat_ns = malloc((size_t)o->ops * sizeof(int64_t));
        pthread_create(&th[i], NULL, run_worker, &ws[i]);
    }
    pthread_barrier_wait(&start);
    t0 = now_ns();
    for (int i = 0; i < o->threads; i++) {
        pthread_join(th[i], NULL);
    }
    t1 = now_ns();
    for (int i = 0; i < o->threads; i++) {
        memcpy(all + k, ws[i].lat_ns, (size_t)o->ops * sizeof(int64_t));
        k += o->ops;
        hits += ws[i].hits;
        failed |= ws[i].failed;
        free(ws[i].lat_ns);
    }
    qsort(all, (size_t)total, sizeof *all, cmp_i64);
    printf("{\"label\":\"%s\",\"backend\":\"%s\",\"op\":\"%s\",\"threads\":%d,\"ops\":%ld,"
           "\"ops_per_s\":%.0f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.1f,"
           "\"hit_rate\":%.4f,\"blob_bytes\":%zu}\n",
           o->label, o->backend, is_get ? "get" : "set", o->threads, total,
           (double)total / ((double)(t1 - t0) / 1e9), pct_us(all, total, 0.50),
           pct_us(all, total, 0.99), pct_us(all, total, 0.999), (double)all[total - 1] / 1000.0,
           (double)hits / (double)total, blob_bytes);
    fflush(stdout);
    pthread_barrier_destroy(&start);
    free(all);
    free(ws);
    free(th);
    if (failed) {
        fprintf(stderr, "bench_cache: some operations failed\n");
    }
    return failed;
}

int main(int argc, char **argv)
{
    bench_opts o = {.backend = "memory",
                    .label = "",
                    .threads = 1,
                    .ops = 200000,
                    .keys = 10000,
                    .value_bytes = 100};
    json_t *cfg, *value;
    cache *c = NULL;
    bp_error err = {0};
    char *key = NULL, *text;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bench_cache: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--backend") == 0) {
            o.backend = v;
        } else if (strcmp(a, "--url") == 0) {
            o.url = v;
        } else if (strcmp(a, "--label") == 0) {
            o.label = v;
        } else if (strcmp(a, "--threads") == 0) {
            o.threads = (int)strtol(v, NULL, 10);
        } else if (strcmp(a, "--ops") == 0) {
            o.ops = strtol(v, NULL, 10);
        } else if (strcmp(a, "--keys") == 0) {
            o.keys = (int)strtol(v, NULL, 10);
        } else if (strcmp(a, "--value-bytes") == 0) {
            o.value_bytes = (int)strtol(v, NULL, 10);
        } else {
            fprintf(stderr, "bench_cache: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (o.threads < 1 || o.ops < 1 || o.keys < 1) {
        fprintf(stderr, "bench_cache: --threads, --ops and --keys must be positive\n");
        return 2;
    }
    log_set_level(BP_LOG_WARN);
    cfg = json_pack("{s:s}", "backend", o.backend);
    if (o.url) {
        json_object_set_new(cfg, "url", json_string(o.url));
    }
    if (cache_open(cfg, "bench", &c, &err) != BP_OK) {
        fprintf(stderr, "bench_cache: %s\n", err.msg);
        return 1;
    }
    json_decref(cfg);
    value = make_value(o.value_bytes);
    text = json_dumps(value, JSON_COMPACT);

    /* prefill every key once so the get phase runs on the hit path */
    for (int i = 0; i < o.keys; i++) {
        json_t *f = json_pack("{s:i, s:s}", "match", i, "market", "1x2");
        if (cache_set(c, "odds", f, value, &err) != BP_OK) {
            fprintf(stderr, "bench_cache: prefill: %s\n", err.msg);
            return 1;
        }
        if (i == 0) {
            cache_key(c, "odds", f, &key, NULL);
        }
        json_decref(f);
    }
    fprintf(stderr, "bench_cache: backend=%s keys=%d example_key=%s value_json_bytes=%zu\n",
            o.backend, o.keys, key, strlen(text));
    rc |= run_phase(c, &o, 0, value, strlen(text) + 17);
    rc |= run_phase(c, &o, 1, value, strlen(text) + 17);
    free(key);
    free(text);
    json_decref(value);
    cache_close(c);
    return rc;
}
