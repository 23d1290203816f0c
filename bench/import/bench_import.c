/*
 * bench_import.c - how fast the football-data CSVs are imported.
 *
 *     bench_import [--runs N] [--store-runs N] --plugin-dir DIR DATA_DIR
 *
 * Two measurements:
 *  1. parse only: every *.csv below DATA_DIR is read into memory once, then parsed N times
 *     (default 5) with bp_fdcsv; best and median run, rows/s, quotes/s, MB/s.
 *  2. the import: the real thing a user runs - the football_data collector plugin, loaded
 *     from --plugin-dir through the real loader with the real host table, importing DATA_DIR
 *     into an empty store (a fresh data dir per run: files read, parsed, matches and odds
 *     stored, one transaction per file), --store-runs times (default 3); then once more into
 *     the full store, where every row is unchanged. Seconds and rows/s for each.
 * The target for the complete import of the bundled set into an empty store is under 2 s.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "fdcsv.h"
#include "registry.h"

typedef struct csv_file {
    char *path;
    char *data;
    size_t len;
} csv_file;

typedef struct file_set {
    csv_file *files;
    size_t n, cap;
    size_t bytes;
} file_set;

typedef struct counts {
    size_t rows, quotes, rejected, dropped;
    double checksum; /* sum of prices, so the work cannot be skipped */
} counts;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int read_file(const char *path, char **out, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f) {
        return -1;
    }
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return -1;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!buf || n != (size_t)st.st_size) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = n;
    return 0;
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(((const csv_file *)a)->path, ((const csv_file *)b)->path);
}

/* Collect every *.csv below dir (sorted, so runs are comparable). */
static int collect(const char *dir, file_set *set)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d) {
        fprintf(stderr, "bench_import: cannot open %s\n", dir);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0) {
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (collect(path, set) != 0) {
                closedir(d);
                return -1;
            }
            continue;
        }
        size_t nl = strlen(e->d_name);
        if (nl < 4 || strcmp(e->d_name + nl - 4, ".csv") != 0) {
            continue;
        }
        if (set->n == set->cap) {
            set->cap = set->cap ? set->cap * 2 : 64;
            set->files = realloc(set->files, set->cap * sizeof *set->files);
            if (!set->files) {
                closedir(d);
                return -1;
            }
        }
        csv_file *f = &set->files[set->n];
        f->path = strdup(path);
        if (!f->path || read_file(path, &f->data, &f->len) != 0) {
            fprintf(stderr, "bench_import: cannot read %s\n", path);
            closedir(d);
            return -1;
        }
        set->bytes += f->len;
        set->n++;
    }
    closedir(d);
    return 0;
}

static int on_row(void *ud, const fd_match *m)
{
    counts *c = ud;
    c->rows++;
    c->quotes += m->n_quotes;
    for (size_t i = 0; i < m->n_quotes; i++) {
        c->checksum += m->quotes[i].price;
    }
    return 0;
}

static void on_reject(void *ud, const fdcsv_reject *r)
{
    counts *c = ud;
    if (r->row_kept) {
        c->dropped++;
    } else {
        c->rejected++;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A scratch directory for one store run. */
static char *scratch_dir(void)
{
    char *dir = strdup("/tmp/bench-import-XXXXXX");
    if (!dir || !mkdtemp(dir)) {
        free(dir);
        return NULL;
    }
    return dir;
}

static void remove_tree(const char *dir)
{
    static const char *const files[] = {"betpipe.db", "betpipe.db-wal", "betpipe.db-shm",
                                        "broker.db",  "broker.db-wal",  "broker.db-shm"};
    char path[4096];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/run", dir);
    rmdir(path);
    rmdir(dir);
}

typedef struct import_run {
    double seconds;
    json_t *report;
} import_run;

/* Import DATA_DIR with the football_data collector into the store of data_dir. */
static int store_import(const char *plugin_dir, const char *data_dir, const char *source,
                        import_run *out)
{
    config_overrides ov = {.data_dir = data_dir, .plugin_dir = plugin_dir, .log_level = "warn"};
    app *a = NULL;
    bp_error err = {0};
    const registry_collector *col;
    json_t *request;
    bp_job run = {.struct_size = sizeof run, .id = "bench", .type = "data.import"};
    int rc = app_open(&ov, APP_STORE | APP_PLUGINS | APP_QUIET, &a, &err);
    if (rc != BP_OK) {
        fprintf(stderr, "bench_import: %s\n", err.msg);
        return 1;
    }
    col = registry_find_collector(a->reg, "football_data");
    if (!col) {
        fprintf(stderr, "bench_import: no football_data collector under %s\n", plugin_dir);
        app_close(a);
        return 1;
    }
    request = json_pack("{s:s}", "source", source);
    run.args = request;
    run.host = col->host;
    double t0 = now_s();
    rc =
        col->desc.collect(col->plugin_state, &run, BP_COLLECT_RESULTS, request, &out->report, &err);
    out->seconds = now_s() - t0;
    json_decref(request);
    app_close(a);
    if (rc != BP_OK) {
        fprintf(stderr, "bench_import: import failed: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static json_int_t group(const json_t *report, const char *g, const char *k)
{
    return json_integer_value(json_object_get(json_object_get(report, g), k));
}

static int store_bench(const char *plugin_dir, const char *source, long runs)
{
    double *times = calloc((size_t)runs, sizeof *times);
    json_t *last = NULL;
    char *dir = NULL;
    import_run again = {0};
    if (!times) {
        return 1;
    }
    for (long r = 0; r < runs; r++) {
        import_run one = {0};
        free(dir);
        dir = scratch_dir();
        if (!dir || store_import(plugin_dir, dir, source, &one) != 0) {
            return 1;
        }
        times[r] = one.seconds;
        json_decref(last);
        last = one.report;
        if (r + 1 < runs) {
            remove_tree(dir);
        }
    }
    /* once more into the full store of the last run: every row is there already */
    if (store_import(plugin_dir, dir, source, &again) != 0) {
        return 1;
    }
    int64_t db_bytes = 0;
    {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/betpipe.db", dir);
        if (stat(path, &st) == 0) {
            db_bytes = (int64_t)st.st_size;
        }
    }
    remove_tree(dir);
    free(dir);
    qsort(times, (size_t)runs, sizeof *times, cmp_double);
    double best = times[0], median = times[runs / 2];
    json_int_t rows = json_integer_value(json_object_get(last, "rows"));
    json_int_t quotes = group(last, "odds", "inserted");
    printf("import into an empty store (football_data collector plugin, real store)\n");
    printf("  files          %lld (failed %lld), rows rejected %lld\n",
           (long long)json_integer_value(json_object_get(last, "files")),
           (long long)json_integer_value(json_object_get(last, "files_failed")),
           (long long)json_integer_value(json_object_get(last, "rejected_rows")));
    printf("  stored         %lld matches, %lld odds quotes; store file %.1f MB\n",
           (long long)group(last, "matches", "inserted"), (long long)quotes,
           (double)db_bytes / 1e6);
    printf("  runs           %ld\n", runs);
    printf("  import best    %.3f s  %.0f rows/s  %.0f quotes/s\n", best, (double)rows / best,
           (double)quotes / best);
    printf("  import median  %.3f s  %.0f rows/s\n", median, (double)rows / median);
    printf("  re-import      %.3f s  %.0f rows/s (matches unchanged %lld, odds unchanged %lld)\n",
           again.seconds, (double)rows / again.seconds,
           (long long)group(again.report, "matches", "unchanged"),
           (long long)group(again.report, "odds", "unchanged"));
    printf("  target         < 2 s for the whole set: %s\n", best < 2.0 ? "met" : "NOT met");
    json_decref(last);
    json_decref(again.report);
    free(times);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *plugin_dir = NULL;
    long runs = 5, store_runs = 3;
    file_set set = {0};
    counts c = {0};
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--runs") == 0 || strcmp(argv[i], "--store-runs") == 0) &&
            i + 1 < argc) {
            char *end;
            long v = strtol(argv[i + 1], &end, 10);
            if (*end || v < 1 || v > 1000) {
                fprintf(stderr, "bench_import: %s takes 1..1000\n", argv[i]);
                return 2;
            }
            if (strcmp(argv[i], "--runs") == 0) {
                runs = v;
            } else {
                store_runs = v;
            }
            i++;
        } else if (strcmp(argv[i], "--plugin-dir") == 0 && i + 1 < argc) {
            plugin_dir = argv[++i];
        } else if (argv[i][0] != '-' && !dir) {
            dir = argv[i];
        } else {
            fprintf(stderr, "usage: bench_import [--runs N] [--store-runs N] --plugin-dir DIR "
                            "DATA_DIR\n");
            return 2;
        }
    }
    if (!dir || !plugin_dir) {
        fprintf(stderr,
                "usage: bench_import [--runs N] [--store-runs N] --plugin-dir DIR DATA_DIR\n");
        return 2;
    }
    double t0 = now_s();
    if (collect(dir, &set) != 0) {
        return 1;
    }
    double read_s = now_s() - t0;
    if (set.n == 0) {
        fprintf(stderr, "bench_import: no .csv files under %s\n", dir);
        return 1;
    }
    qsort(set.files, set.n, sizeof *set.files, cmp_path);

    double *times = calloc((size_t)runs, sizeof *times);
    if (!times) {
        return 1;
    }
    for (long r = 0; r < runs; r++) {
        counts rc = {0};
        double s = now_s();
        for (size_t i = 0; i < set.n; i++) {
            bp_error err = {0};
            int st = fdcsv_parse(set.files[i].path, set.files[i].data, set.files[i].len, on_row,
                                 on_reject, &rc, NULL, &err);
            if (st != BP_OK) {
                fprintf(stderr, "bench_import: %s\n", err.msg);
                return 1;
            }
        }
        times[r] = now_s() - s;
        c = rc;
    }
    qsort(times, (size_t)runs, sizeof *times, cmp_double);
    double best = times[0], median = times[runs / 2];

    printf("football-data parse (bp_fdcsv alone, files in memory)\n");
    printf("  files          %zu (%.2f MB), read in %.3f s\n", set.n, (double)set.bytes / 1e6,
           read_s);
    printf("  matches        %zu (rejected %zu, price cells dropped %zu)\n", c.rows, c.rejected,
           c.dropped);
    printf("  odds quotes    %zu (checksum %.2f)\n", c.quotes, c.checksum);
    printf("  runs           %ld\n", runs);
    printf("  parse best     %.4f s  %.0f rows/s  %.0f quotes/s  %.1f MB/s\n", best,
           (double)c.rows / best, (double)c.quotes / best, (double)set.bytes / 1e6 / best);
    printf("  parse median   %.4f s  %.0f rows/s\n", median, (double)c.rows / median);
    for (size_t i = 0; i < set.n; i++) {
        free(set.files[i].path);
        free(set.files[i].data);
    }
    free(set.files);
    free(times);
    printf("\n");
    fflush(stdout);
    return store_bench(plugin_dir, dir, store_runs);
}
