/*
 * maint - maintenance jobs: maint.cleanup_cache, maint.optimize_db, maint.backup_db.
 *
 * backup_db copies the live store with SQLite's online backup API (jobs keep reading and
 * writing meanwhile) into <dir>/betpipe-<UTC timestamp>.db, proves the copy sound with
 * PRAGMA integrity_check before it counts, and then keeps only the newest `keep` backups.
 * A copy that fails verification is deleted and the job fails: a backup that cannot be
 * restored is worse than none, because it is trusted.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "betpipe/betpipe.h"

/* ---- maint.cleanup_cache ------------------------------------------------------------------ */

/*
 * An in-memory cache lives inside one process. Run by a daemon, the job cleans that daemon's
 * cache (the result names it). Run anywhere else - `betpipe run --wait` with no daemon serving
 * maintenance_queue runs the job in the CLI's own process, and an isolated job runs in a
 * process of its own - it would clean a cache that was born empty with that process and report
 * 0, which reads as "the cache is clean" when nothing of the daemons' was touched. So it is
 * refused there, saying where the cache is. A Redis cache is shared: any process cleans it.
 */
static int run_cleanup_cache(const bp_job *job, json_t **out_result, bp_error *err)
{
    const bp_host *h = job->host;
    json_t *report = NULL;
    int rc;
    if (!h->cache) {
        return bp_err(err, BP_E_UNAVAILABLE, "this betpipe has no cache configured");
    }
    rc = h->cache->cleanup(h, &report, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (strcmp(json_string_value(json_object_get(report, "backend")), "memory") == 0 &&
        !json_is_true(json_object_get(report, "daemon"))) {
        json_decref(report);
        return bp_err(err, BP_E_STATE,
                      "the cache is in memory (cache.backend \"memory\", the default): it lives "
                      "inside each daemon, and this run is not in a daemon but in a process of its "
                      "own, whose cache is empty - nothing was cleaned. Let a daemon run it "
                      "(`betpipe daemon` serving maintenance_queue; its beat runs this job daily), "
                      "or use a Redis cache (cache.url), which any process can clean");
    }
    *out_result = report;
    return BP_OK;
}

/* ---- maint.optimize_db --------------------------------------------------------------------- */

static int run_optimize_db(const bp_job *job, json_t **out_result, bp_error *err)
{
    const bp_host *h = job->host;
    int64_t t0 = h->mono_ns(h);
    int rc = h->store->optimize(h, out_result, err);
    if (rc == BP_OK) {
        json_object_set_new(*out_result, "path", json_string(h->store->path(h)));
        json_object_set_new(*out_result, "duration_ms",
                            json_integer((h->mono_ns(h) - t0) / 1000000));
        BP_LOGI(h, "store optimised bytes_before=%lld bytes_after=%lld",
                (long long)json_integer_value(json_object_get(*out_result, "bytes_before")),
                (long long)json_integer_value(json_object_get(*out_result, "bytes_after")));
    }
    return rc;
}

/* ---- maint.backup_db ----------------------------------------------------------------------- */

#define BACKUP_PREFIX "betpipe-"
#define BACKUP_SUFFIX ".db"

static int mkdir_p(const char *path, bp_error *err)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof buf) {
        return bp_err(err, BP_E_INVAL, "backup dir path too long: %s", path);
    }
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
                char msg[128];
                int e = errno;
                return bp_err(err, BP_E_IO, "cannot create backup dir %s: %s", buf,
                              strerror_r(e, msg, sizeof msg) == 0 ? msg : "error");
            }
            *p = saved;
            if (!saved) {
                return BP_OK;
            }
        }
    }
}

static int is_backup_name(const char *name)
{
    size_t n = strlen(name);
    return n > strlen(BACKUP_PREFIX) + strlen(BACKUP_SUFFIX) &&
           strncmp(name, BACKUP_PREFIX, strlen(BACKUP_PREFIX)) == 0 &&
           strcmp(name + n - strlen(BACKUP_SUFFIX), BACKUP_SUFFIX) == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Delete the oldest backups beyond `keep`. Names carry a UTC timestamp, so name order is age
 * order. Returns the deleted names as a JSON array. */
static json_t *apply_retention(const bp_host *h, const char *dir, int keep)
{
    json_t *deleted = json_array();
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    DIR *d = opendir(dir);
    if (!d) {
        return deleted;
    }
    while ((de = readdir(d)) != NULL) {
        if (!is_backup_name(de->d_name)) {
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nn = realloc(names, ncap * sizeof *nn);
            if (!nn) {
                break;
            }
            names = nn;
            cap = ncap;
        }
        names[n] = strdup(de->d_name);
        if (names[n]) {
            n++;
        }
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i + (size_t)keep < n; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= (int)sizeof path) {
            continue;
        }
        if (unlink(path) == 0) {
            json_array_append_new(deleted, json_string(path));
            BP_LOGI(h, "old backup removed path=%s", path);
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    return deleted;
}

static int run_backup_db(const bp_job *job, json_t **out_result, bp_error *err)
{
    const bp_host *h = job->host;
    const char *dir_arg = json_string_value(json_object_get(job->args, "dir"));
    int keep = (int)json_integer_value(json_object_get(job->args, "keep"));
    char dir[PATH_MAX], path[PATH_MAX], stamp[32];
    int64_t now = h->now_ms(h), t0 = h->mono_ns(h);
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    struct stat st;
    int rc;

    if (dir_arg && *dir_arg) {
        if (snprintf(dir, sizeof dir, "%s", dir_arg) >= (int)sizeof dir) {
            return bp_err(err, BP_E_INVAL, "args.dir: path too long");
        }
    } else if (snprintf(dir, sizeof dir, "%s/backups", h->data_dir(h)) >= (int)sizeof dir) {
        return bp_err(err, BP_E_INVAL, "data dir path too long");
    }
    rc = mkdir_p(dir, err);
    if (rc != BP_OK) {
        return rc;
    }
    gmtime_r(&secs, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
    /* Millisecond suffix: two backups in the same second must not collide. */
    if (snprintf(path, sizeof path, "%s/" BACKUP_PREFIX "%s%03dZ" BACKUP_SUFFIX, dir, stamp,
                 (int)(now % 1000)) >= (int)sizeof path) {
        return bp_err(err, BP_E_INVAL, "backup path under %s is too long", dir);
    }
    rc = h->store->backup(h, path, err);
    if (rc != BP_OK) {
        return rc;
    }
    rc = h->store->verify(h, path, err);
    if (rc != BP_OK) {
        unlink(path);
        bp_err_prefix(err, "backup copy failed verification and was deleted: ");
        return rc;
    }
    if (stat(path, &st) != 0) {
        return bp_err(err, BP_E_IO, "backup %s vanished after verification", path);
    }
    *out_result = json_pack("{s:s, s:s, s:I, s:b, s:s, s:I, s:i, s:o}", "path", path, "source",
                            h->store->path(h), "bytes", (json_int_t)st.st_size, "verified", 1,
                            "integrity_check", "ok", "duration_ms",
                            (json_int_t)((h->mono_ns(h) - t0) / 1000000), "keep", keep, "deleted",
                            apply_retention(h, dir, keep));
    BP_LOGI(h, "backup written path=%s bytes=%lld", path, (long long)st.st_size);
    return *out_result ? BP_OK : bp_err(err, BP_E_NOMEM, "out of memory");
}

static const bp_job_type maint_jobs[] = {
    {
        .struct_size = sizeof(bp_job_type),
        .name = "maint.cleanup_cache",
        .description = "Evict cache entries past their stale limit; report counts per type",
        .queue = "maintenance_queue",
        .args_schema = "{\"type\": \"object\", \"additionalProperties\": false}",
        .max_retries = 1,
        .run = run_cleanup_cache,
    },
    {
        .struct_size = sizeof(bp_job_type),
        .name = "maint.optimize_db",
        .description = "ANALYZE, PRAGMA optimize, incremental vacuum; sizes before and after",
        .queue = "maintenance_queue",
        .args_schema = "{\"type\": \"object\", \"additionalProperties\": false}",
        .soft_time_limit_s = 1800,
        .max_retries = 1,
        .run = run_optimize_db,
    },
    {
        .struct_size = sizeof(bp_job_type),
        .name = "maint.backup_db",
        .description = "Online backup of the store into a timestamped, verified file",
        .queue = "maintenance_queue",
        .args_schema = "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
                       "\"dir\": {\"type\": \"string\", \"minLength\": 1, \"description\": "
                       "\"where to write backups (default <data_dir>/backups)\"},"
                       "\"keep\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 10000, "
                       "\"default\": 7, \"description\": \"how many backups to keep\"}}}",
        .soft_time_limit_s = 3600,
        .max_retries = 2,
        .run = run_backup_db,
    },
};

static int maint_init(const bp_host *host, bp_registry *reg, void **out_state, bp_error *err)
{
    (void)host;
    *out_state = NULL;
    for (size_t i = 0; i < sizeof maint_jobs / sizeof maint_jobs[0]; i++) {
        int rc = reg->add_job_type(reg, &maint_jobs[i], err);
        if (rc != BP_OK) {
            return rc;
        }
    }
    return BP_OK;
}

static void maint_fini(void *state)
{
    (void)state;
}

BP_PLUGIN_DEFINE("maint", "1.0.0", "Maintenance: cache cleanup, database optimise and backup",
                 maint_init, maint_fini)
