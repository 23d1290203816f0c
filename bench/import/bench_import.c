/*
 * bench_import.c - how fast the football-data CSVs are imported.
 *
 *     bench_import [--runs N] DIR
 *
 * Reads every *.csv below DIR into memory once, then parses the whole set N times (default 5)
 * with bp_fdcsv and prints the best and median run: seconds, match rows per second, quotes per
 * second and MB/s, plus the read time. The store part of the import (inserting into an empty
 * SQLite store) joins this benchmark once the store's domain schema exists; the target for the
 * complete import of the bundled set is under 2 s.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fdcsv.h"

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

int main(int argc, char **argv)
{
    const char *dir = NULL;
    long runs = 5;
    file_set set = {0};
    counts c = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            char *end;
            runs = strtol(argv[++i], &end, 10);
            if (*end || runs < 1 || runs > 1000) {
                fprintf(stderr, "bench_import: --runs takes 1..1000\n");
                return 2;
            }
        } else if (argv[i][0] != '-' && !dir) {
            dir = argv[i];
        } else {
            fprintf(stderr, "usage: bench_import [--runs N] DIR\n");
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "usage: bench_import [--runs N] DIR\n");
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

    printf("football-data import benchmark (parse only; the store is not part of it yet)\n");
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
    return 0;
}
