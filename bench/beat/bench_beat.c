/*
 * bench_beat - how late the beat enqueues a job after its slot.
 *
 * Starts D real daemons (all running beat) on one instance with E entries of "every 1s"
 * (sys.noop, no_overlap on as by default), lets them run for S seconds, stops them, then reads
 * every beat job from the broker:
 *
 *   lateness = job.created_ms - slot     (ms resolution: created_ms is taken when the job is
 *                                         built, just before the broker transaction)
 *
 * p50 / p99 / max over all slots due while every daemon was up, and whether each such slot
 * is there exactly once. Each daemon also logs, when its beat stops, the lateness to the end of
 * its enqueue (commit included) in microseconds from a log-scale histogram: those lines are
 * printed too.
 *
 * usage: bench_beat --betpipe PATH --plugin-dir DIRS --data-dir DIR [--entries 10]
 *                   [--duration 30] [--daemons 2] [--broker URL]
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app.h"
#include "schedule.h"
#include "util.h"

#define MAX_DAEMONS 8

static char data_dir[512];

static void die(const char *what, const bp_error *err)
{
    fprintf(stderr, "bench_beat: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
    exit(1);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t pct(const int64_t *sorted, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static int count_in_log(const char *log, const char *needle)
{
    FILE *f = fopen(log, "r");
    char line[4096];
    int n = 0;
    if (!f) {
        return 0;
    }
    while (fgets(line, sizeof line, f)) {
        n += strstr(line, needle) != NULL;
    }
    fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    const char *betpipe = NULL, *plugin_dir = NULL, *broker_url = NULL;
    int entries = 10, duration = 30, daemons = 2;
    char sched[600], log[600];
    pid_t pids[MAX_DAEMONS];
    int64_t all_up_ms, stop_ms;
    FILE *f;

    for (int i = 1; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--betpipe") == 0 && next) {
            betpipe = argv[++i];
        } else if (strcmp(argv[i], "--plugin-dir") == 0 && next) {
            plugin_dir = argv[++i];
        } else if (strcmp(argv[i], "--data-dir") == 0 && next) {
            snprintf(data_dir, sizeof data_dir, "%s", argv[++i]);
        } else if (strcmp(argv[i], "--broker") == 0 && next) {
            broker_url = argv[++i];
        } else if (strcmp(argv[i], "--entries") == 0 && next) {
            entries = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--duration") == 0 && next) {
            duration = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--daemons") == 0 && next) {
            daemons = (int)strtol(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: bench_beat --betpipe PATH --plugin-dir DIRS --data-dir DIR "
                            "[--entries N] [--duration S] [--daemons D] [--broker URL]\n");
            return 2;
        }
    }
    if (!betpipe || !plugin_dir || !*data_dir || entries < 1 || duration < 3 || daemons < 1 ||
        daemons > MAX_DAEMONS) {
        die("missing or bad arguments (see the usage line)", NULL);
    }

    /* The schedule: E entries, every second. */
    snprintf(sched, sizeof sched, "%s/bench-schedule.json", data_dir);
    snprintf(log, sizeof log, "%s/daemons.log", data_dir);
    f = fopen(sched, "w");
    if (!f) {
        die("cannot write the schedule file", NULL);
    }
    fprintf(f, "{\"entries\": {");
    for (int e = 0; e < entries; e++) {
        fprintf(f, "%s\"tick%02d\": {\"job\": \"sys.noop\", \"every\": \"1s\"}", e ? ", " : "", e);
    }
    fprintf(f, "}}\n");
    fclose(f);
    setenv("BETPIPE_SCHEDULES", sched, 1);
    setenv("BETPIPE_PLUGIN_DIR", plugin_dir, 1);
    if (broker_url) {
        setenv("BETPIPE_BROKER_URL", broker_url, 1);
    }

    /* One after the other: each waits for the previous one to be ready, so that only the
     * first creates the instance's files. */
    for (int d = 0; d < daemons; d++) {
        int64_t end = util_now_ms() + 30000;
        pids[d] = fork();
        if (pids[d] == 0) {
            const char *args[] = {betpipe,    "--data-dir", data_dir, "daemon",
                                  "--queues", "default",    NULL};
            if (!freopen(log, "a", stderr)) {
                _exit(127);
            }
            execv(betpipe, (char *const *)(uintptr_t)args);
            _exit(127);
        }
        while (count_in_log(log, " ready worker=") < d + 1) {
            if (util_now_ms() > end) {
                die("a daemon did not become ready (see daemons.log)", NULL);
            }
            util_sleep_ms(20);
        }
    }
    all_up_ms = util_now_ms();
    util_sleep_ms((int64_t)duration * 1000);
    stop_ms = util_now_ms();
    for (int d = 0; d < daemons; d++) {
        int status;
        kill(pids[d], SIGTERM);
        waitpid(pids[d], &status, 0);
    }

    /* Read the jobs back. */
    {
        config_overrides ov = {.data_dir = data_dir, .log_level = "warn"};
        broker_filter filt = {.state = -1, .limit = 10000000};
        app *a = NULL;
        bp_error err = {0};
        json_t *list = NULL, *o;
        size_t i, n = 0, n_all = 0, expected;
        int64_t *late = NULL;
        if (app_open(&ov, APP_BROKER | APP_QUIET, &a, &err) != BP_OK) {
            die("open", &err);
        }
        if (a->broker->ops->list(a->broker, &filt, &list, &err) != BP_OK) {
            die("list", &err);
        }
        late = calloc(json_array_size(list) + 1, sizeof *late);
        json_array_foreach(list, i, o)
        {
            const char *id = json_string_value(json_object_get(o, "id"));
            char name[64];
            int64_t slot, created = 0;
            if (!schedule_parse_slot_id(id, name, sizeof name, &slot)) {
                continue;
            }
            n_all++;
            /* only slots due while every daemon was up and before the stop (1 s margins) */
            if (slot < all_up_ms + 1000 || slot > stop_ms - 1000) {
                continue;
            }
            util_parse_iso8601(json_string_value(json_object_get(o, "created")), &created, NULL);
            late[n++] = created - slot;
        }
        /* whole seconds strictly inside (all_up + 1 s, stop - 1 s), times the entries */
        expected =
            (size_t)(((stop_ms - 1000) / 1000 - (all_up_ms + 999 + 1000) / 1000 + 1) * entries);
        qsort(late, n, sizeof *late, cmp_i64);
        printf("# %d daemon(s), %d every-1s entries, %d s, broker %s\n", daemons, entries, duration,
               a->broker->ops->name);
        printf("slots measured      %zu (expected %zu: each slot once)\n", n, expected);
        printf("beat jobs in total  %zu\n", n_all);
        if (n > 0) {
            printf("enqueue lateness    p50 %lld ms   p99 %lld ms   max %lld ms   (created_ms - "
                   "slot)\n",
                   (long long)pct(late, n, 0.50), (long long)pct(late, n, 0.99),
                   (long long)late[n - 1]);
        }
        free(late);
        json_decref(list);
        app_close(a);
    }
    /* Each beat's own microsecond figures (to the end of the enqueue, commit included). */
    {
        FILE *lf = fopen(log, "r");
        char line[4096];
        while (lf && fgets(line, sizeof line, lf)) {
            const char *p = strstr(line, "beat stopped ");
            if (p) {
                printf("daemon: %s", p + strlen("beat stopped "));
            }
        }
        if (lf) {
            fclose(lf);
        }
    }
    return 0;
}
