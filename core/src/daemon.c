/*
 * daemon.c - the daemon's life: open the instance, start the pools, wait for signals.
 *
 * Signals are blocked in every thread and taken synchronously by the main thread with
 * sigwait(), so no handler ever runs inside library code:
 *   SIGTERM, SIGINT  graceful stop: no new jobs, running ones get the grace period, the rest
 *                    stay queued; a second signal skips the rest of the grace period.
 *   SIGHUP           reload the config file: queue concurrency and log level change live;
 *                    the beat reloads its schedule files.
 *
 * The beat (beat.h) runs as a thread of every daemon unless --no-beat or config beat.enabled /
 * daemon.beat is false. It is stopped first on shutdown, so no job is enqueued by a daemon that
 * is going away.
 */
#include "daemon.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "beat.h"
#include "cache.h"
#include "control.h"
#include "control_redis.h"
#include "exec.h"
#include "log.h"
#include "pool.h"
#include "schedule.h"
#include "util.h"

/* Parse "q1=4,q2=1" into the queue table. */
static int apply_concurrency(config_queue *qs, size_t n, const char *spec, bp_error *err)
{
    char *copy = strdup(spec), *save = NULL;
    int rc = BP_OK;
    if (!copy) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    for (char *item = strtok_r(copy, ",", &save); item && rc == BP_OK;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        int64_t v;
        bool found = false;
        if (!eq) {
            rc = bp_err(err, BP_E_INVAL, "--concurrency: '%s' is not QUEUE=N", item);
            break;
        }
        *eq = '\0';
        rc = util_parse_int64(eq + 1, 0, 256, "--concurrency", &v, err);
        for (size_t i = 0; rc == BP_OK && i < n; i++) {
            if (strcmp(qs[i].name, item) == 0) {
                qs[i].concurrency = (int)v;
                found = true;
            }
        }
        if (rc == BP_OK && !found) {
            rc = bp_err(err, BP_E_INVAL, "--concurrency: unknown queue '%s'", item);
        }
    }
    free(copy);
    return rc;
}

/* The queues this daemon serves, with their concurrency: config, then --queues, then
 * --concurrency. */
static int select_queues(const config *cfg, const daemon_options *o, config_queue **out,
                         size_t *out_n, bp_error *err)
{
    config_queue *qs = calloc(cfg->n_queues, sizeof *qs);
    size_t n = 0;
    int rc = BP_OK;
    if (!qs) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if (o->queues && *o->queues) {
        char *copy = strdup(o->queues), *save = NULL;
        for (char *q = strtok_r(copy, ",", &save); q && rc == BP_OK;
             q = strtok_r(NULL, ",", &save)) {
            const config_queue *cq = config_find_queue(cfg, q);
            if (!cq) {
                rc = bp_err(err, BP_E_INVAL, "--queues: unknown queue '%s' (known: %s)", q,
                            config_queue_names(cfg));
            } else {
                qs[n++] = *cq;
            }
        }
        free(copy);
    } else {
        memcpy(qs, cfg->queues, cfg->n_queues * sizeof *qs);
        n = cfg->n_queues;
    }
    if (rc == BP_OK && o->concurrency) {
        rc = apply_concurrency(qs, n, o->concurrency, err);
    }
    if (rc != BP_OK) {
        free(qs);
        return rc;
    }
    *out = qs;
    *out_n = n;
    return BP_OK;
}

/* Start the beat when this daemon should run one; NULL when it should not or cannot. */
static beat *start_beat(app *a, const daemon_options *o)
{
    schedule_set *set = NULL;
    beat *b = NULL;
    bp_error err = {0};
    if (o->no_beat) {
        log_info("daemon", "beat: not run here (--no-beat)");
        return NULL;
    }
    if (!schedule_beat_enabled(a->cfg)) {
        log_info("daemon", "beat: not run here (config beat.enabled / daemon.beat is false)");
        return NULL;
    }
    if (schedule_load_for(a->cfg, &set, &err) != BP_OK) {
        log_error("daemon", "beat not started: %s", err.msg);
        return NULL;
    }
    beat_check_entries(a, set);
    if (beat_start(a, set, &b, &err) != BP_OK) {
        log_error("daemon", "beat not started: %s", err.msg);
        return NULL;
    }
    return b;
}

/* SIGHUP, after the config was swapped: reload the schedule files, or start/stop the beat when
 * the config switched it. A schedule file with an error keeps the running schedule whole: a
 * typo must not silently drop the entries of the file it is in. */
static void reload_beat(app *a, const daemon_options *o, beat **bp)
{
    schedule_set *set = NULL;
    bp_error err = {0};
    if (o->no_beat) {
        return;
    }
    if (!schedule_beat_enabled(a->cfg)) {
        if (*bp) {
            beat_stop(*bp, NULL);
            *bp = NULL;
            log_info("daemon", "SIGHUP: beat stopped (config beat.enabled / daemon.beat is false)");
        }
        return;
    }
    if (!*bp) {
        *bp = start_beat(a, o);
        return;
    }
    if (schedule_load_for(a->cfg, &set, &err) != BP_OK) {
        log_error("daemon", "SIGHUP: schedules not reloaded, keeping the running ones: %s",
                  err.msg);
        return;
    }
    if (json_array_size(set->problems) > 0) {
        log_error("daemon", "SIGHUP: schedules not reloaded, keeping the running ones: %s",
                  json_string_value(json_object_get(json_array_get(set->problems, 0), "error")));
        schedule_set_free(set);
        return;
    }
    beat_check_entries(a, set);
    beat_reload(*bp, set);
}

static bool reload(app *a, const daemon_options *o, config **retired, size_t *n_retired)
{
    config *fresh = NULL;
    config_queue *qs = NULL;
    size_t n = 0;
    bp_error err = {0};
    if (config_load(&o->ov, &fresh, &err) != BP_OK) {
        log_error("daemon", "SIGHUP: config not reloaded, keeping the running one: %s", err.msg);
        return false;
    }
    if (select_queues(fresh, o, &qs, &n, &err) != BP_OK ||
        schedule_check_config(fresh, &err) != BP_OK) {
        log_error("daemon", "SIGHUP: config not reloaded: %s", err.msg);
        free(qs);
        config_free(fresh);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (pool_set_concurrency(a->pool, qs[i].name, qs[i].concurrency, &err) != BP_OK) {
            log_warn("daemon", "SIGHUP: %s", err.msg);
        }
    }
    free(qs);
    log_set_level(fresh->log_level);
    /* Other threads may still read the old config: keep it alive until exit. */
    retired[(*n_retired)++] = a->cfg;
    a->cfg = fresh;
    log_info("daemon", "configuration reloaded from %s", fresh->path ? fresh->path : "defaults");
    return true;
}

/* ============================================================================================
 * Control commands (betpipe inspect / control / cache), answered on the control thread
 * ========================================================================================== */

static int queue_concurrency(app *a, const char *queue, int *out)
{
    json_t *stats = pool_stats(a->pool);
    json_t *q = json_object_get(json_object_get(stats, "queues"), queue);
    int rc = q ? BP_OK : BP_E_NOTFOUND;
    if (q) {
        *out = (int)json_integer_value(json_object_get(q, "concurrency"));
    }
    json_decref(stats);
    return rc;
}

static json_t *resize(app *a, const json_t *args, int direction, bp_error *err)
{
    const char *queue = json_string_value(json_object_get(args, "queue"));
    json_int_t n = json_is_integer(json_object_get(args, "n"))
                       ? json_integer_value(json_object_get(args, "n"))
                       : 1;
    int cur = 0;
    if (!queue) {
        bp_err(err, BP_E_INVAL, "args.queue is required");
        return NULL;
    }
    if (queue_concurrency(a, queue, &cur) != BP_OK) {
        bp_err(err, BP_E_NOTFOUND, "this daemon does not serve queue %s", queue);
        return NULL;
    }
    if (direction == 0) { /* set */
        cur = (int)n;
    } else {
        cur += direction * (int)n;
    }
    if (cur < 0) {
        cur = 0;
    }
    if (pool_set_concurrency(a->pool, queue, cur, err) != BP_OK) {
        return NULL;
    }
    return json_pack("{s:s, s:i}", "queue", queue, "concurrency", cur);
}

/* `control add-consumer QUEUE [N]`: consume a queue of the config, served here or not (Celery's
 * add_consumer), with N threads, else the queue's configured concurrency (at least 1). A queue
 * new to this daemon gets the config's cluster-wide cap stored in the broker, as the queues it
 * started with did. */
static json_t *add_consumer(app *a, const json_t *args, bp_error *err)
{
    const char *queue = json_string_value(json_object_get(args, "queue"));
    const config_queue *cq = queue ? config_find_queue(a->cfg, queue) : NULL;
    json_t *n = json_object_get(args, "n");
    int cur = 0, want;
    bool is_new;
    if (!cq) {
        bp_err(err, BP_E_NOTFOUND, "add_consumer: unknown queue %s (known: %s)",
               queue ? queue : "(none)", config_queue_names(a->cfg));
        return NULL;
    }
    is_new = queue_concurrency(a, queue, &cur) != BP_OK;
    want = json_is_integer(n) ? (int)json_integer_value(n)
                              : (cq->concurrency > 0 ? cq->concurrency : 1);
    if (is_new &&
        a->broker->ops->set_queue_cap(a->broker, queue, cq->global_concurrency, err) != BP_OK) {
        bp_err_prefix(err, "add_consumer: queue %s global_concurrency: ", queue);
        return NULL;
    }
    if (pool_add_queue(a->pool, queue, want, err) != BP_OK) {
        bp_err_prefix(err, "add_consumer: ");
        return NULL;
    }
    return json_pack("{s:s, s:i, s:b}", "queue", queue, "concurrency", want, "added", is_new);
}

static json_t *handle_control(void *ud, const char *cmd, const json_t *args, bp_error *err)
{
    app *a = ud;
    if (strcmp(cmd, "ping") == 0) {
        return json_pack("{s:s}", "ok", "pong");
    }
    if (strcmp(cmd, "stats") == 0) {
        json_t *st = pool_stats(a->pool);
        json_object_set_new(st, "pid", json_integer(getpid()));
        json_object_set_new(st, "hostname", json_string(a->hostname));
        json_object_set_new(st, "broker", json_string(a->broker->ops->name));
        json_object_set_new(st, "data_dir", json_string(a->cfg->data_dir));
        json_object_set_new(st, "version", json_string(BP_VERSION));
        return st;
    }
    if (strcmp(cmd, "active") == 0) {
        return pool_active(a->pool);
    }
    if (strcmp(cmd, "reserved") == 0) {
        return pool_reserved(a->pool);
    }
    if (strcmp(cmd, "registered") == 0) {
        return registry_names(a->reg, REGISTRY_JOB);
    }
    if (strcmp(cmd, "active_queues") == 0) {
        json_t *st = pool_stats(a->pool), *out = json_object(), *q;
        const char *name;
        json_object_foreach(json_object_get(st, "queues"), name, q)
        {
            /* a queue at 0 (cancel-consumer, pool-shrink to 0) is not consumed */
            if (json_integer_value(json_object_get(q, "concurrency")) > 0) {
                json_object_set(out, name, json_object_get(q, "concurrency"));
            }
        }
        json_decref(st);
        return out;
    }
    if (strcmp(cmd, "conf") == 0) {
        return config_effective(a->cfg);
    }
    if (strcmp(cmd, "pool_grow") == 0) {
        return resize(a, args, +1, err);
    }
    if (strcmp(cmd, "pool_shrink") == 0) {
        return resize(a, args, -1, err);
    }
    if (strcmp(cmd, "cancel_consumer") == 0) {
        json_t *zero = json_pack("{s:O?, s:i}", "queue", json_object_get(args, "queue"), "n", 0);
        json_t *r = resize(a, zero, 0, err);
        json_decref(zero);
        return r;
    }
    if (strcmp(cmd, "add_consumer") == 0) {
        return add_consumer(a, args, err);
    }
    if (strcmp(cmd, "rate_limit") == 0 || strcmp(cmd, "limits") == 0) {
        /* The limits live in the broker (`control rate-limit` stored them there before asking):
         * each daemon answers with what it now obeys. */
        json_t *out = NULL;
        if (a->broker->ops->limits(a->broker, &out, err) != BP_OK) {
            return NULL;
        }
        return out;
    }
    if (strcmp(cmd, "shutdown") == 0) {
        log_warn("daemon", "shutdown requested over the control socket");
        kill(getpid(), SIGTERM);
        return json_pack("{s:s}", "ok", "shutting down");
    }
    if (strcmp(cmd, "cache_stats") == 0 || strcmp(cmd, "cache_get") == 0 ||
        strcmp(cmd, "cache_clear") == 0) {
        json_t *out = NULL;
        int rc;
        if (!a->cache) {
            bp_err(err, BP_E_UNAVAILABLE, "this daemon has no cache");
            return NULL;
        }
        if (strcmp(cmd, "cache_stats") == 0) {
            rc = cache_stats(a->cache, &out, err);
        } else if (strcmp(cmd, "cache_get") == 0) {
            rc = cache_inspect(a->cache, json_string_value(json_object_get(args, "type")),
                               json_string_value(json_object_get(args, "key")), &out, err);
        } else {
            rc = cache_clear(a->cache, json_string_value(json_object_get(args, "type")), &out, err);
        }
        return rc == BP_OK ? (out ? out : json_object()) : NULL;
    }
    bp_err(err, BP_E_INVAL, "unknown control command '%s'", cmd);
    return NULL;
}

/* Two transports may call the handler (the local socket and, on a Redis broker, the channel
 * every host shares): one request at a time. */
static pthread_mutex_t control_lock = PTHREAD_MUTEX_INITIALIZER;

static json_t *handle_control_serial(void *ud, const char *cmd, const json_t *args, bp_error *err)
{
    json_t *r;
    pthread_mutex_lock(&control_lock);
    r = handle_control(ud, cmd, args, err);
    pthread_mutex_unlock(&control_lock);
    return r;
}

/* The limits of this daemon's config go into the broker, where every worker obeys them: the
 * cluster-wide cap of each queue served here (none configured clears it) and the rate limit of
 * each job type that has one. A later `betpipe control rate-limit` changes a rate until a
 * daemon starts again with this config. */
static int apply_limits(app *a, const config_queue *qs, size_t n, bp_error *err)
{
    const char *type;
    json_t *v;
    for (size_t i = 0; i < n; i++) {
        if (a->broker->ops->set_queue_cap(a->broker, qs[i].name, qs[i].global_concurrency, err) !=
            BP_OK) {
            bp_err_prefix(err, "queue %s global_concurrency: ", qs[i].name);
            return err ? err->code : BP_E_UNAVAILABLE;
        }
        if (qs[i].global_concurrency > 0) {
            log_info("daemon", "queue %s: at most %d jobs at once across every daemon", qs[i].name,
                     qs[i].global_concurrency);
        }
    }
    json_object_foreach((json_t *)(uintptr_t)config_section(a->cfg, "jobs"), type, v)
    {
        const char *rate = json_string_value(json_object_get(v, "rate_limit"));
        if (rate && a->broker->ops->set_rate_limit(a->broker, type, rate, err) != BP_OK) {
            bp_err_prefix(err, "jobs.%s.rate_limit: ", type);
            return err ? err->code : BP_E_UNAVAILABLE;
        }
    }
    return BP_OK;
}

typedef struct hurry_watch {
    pool *pool;
    sigset_t set;
    atomic_bool done;
} hurry_watch;

/* While the pool drains, a second SIGTERM/SIGINT ends the grace period at once. */
static void *hurry_main(void *arg)
{
    hurry_watch *w = arg;
    struct timespec tick = {0, 100 * 1000000L};
    while (!atomic_load(&w->done)) {
        int sig = sigtimedwait(&w->set, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            log_warn("daemon", "second stop signal: cancelling running jobs now");
            pool_hurry(w->pool);
        }
    }
    return NULL;
}

int daemon_main(const daemon_options *o)
{
    app *a = NULL;
    bp_error err = {0};
    sigset_t set;
    config_queue *qs = NULL;
    pool_queue_spec *specs = NULL;
    size_t n = 0;
    config *retired[64];
    control_server *ctl = NULL;
    control_redis_server *rctl = NULL;
    size_t n_retired = 0;
    beat *bt = NULL;
    int rc, exit_code = 0;

    /* A daemon allocates and frees the same few shapes thousands of times a second (job
     * records, argument lists, replies): keep freed memory in the heap instead of returning it to
     * the kernel and asking for it again (glibc trims the top of the heap above 128 KiB by
     * default, and that churn showed in profiles). */
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    mallopt(M_TOP_PAD, 4 * 1024 * 1024);
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);

    /* Block the signals before any thread exists so every thread inherits the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    {
        struct sigaction ign = {.sa_handler = SIG_IGN};
        sigaction(SIGPIPE, &ign, NULL);
    }

    rc = app_open(&o->ov, APP_ALL | APP_ASYNC_HISTORY, &a, &err);
    if (rc != BP_OK) {
        fprintf(stderr, "betpipe daemon: %s\n", err.msg);
        return rc == BP_E_CONFIG ? 3 : 4;
    }
    if (schedule_check_config(a->cfg, &err) != BP_OK) {
        fprintf(stderr, "betpipe daemon: %s\n", err.msg);
        app_close(a);
        return 3;
    }
    rc = select_queues(a->cfg, o, &qs, &n, &err);
    if (rc != BP_OK) {
        fprintf(stderr, "betpipe daemon: %s\n", err.msg);
        app_close(a);
        return 2;
    }
    rc = apply_limits(a, qs, n, &err);
    if (rc != BP_OK) {
        fprintf(stderr, "betpipe daemon: cannot store the limits in the broker: %s\n", err.msg);
        free(qs);
        app_close(a);
        return rc == BP_E_INVAL || rc == BP_E_CONFIG ? 3 : 4;
    }
    specs = calloc(n, sizeof *specs);
    for (size_t i = 0; i < n; i++) {
        specs[i] = (pool_queue_spec){qs[i].name, qs[i].concurrency};
    }
    {
        pool_config pc = {.queues = specs,
                          .n_queues = n,
                          .run = exec_run,
                          .run_ud = a,
                          .worker_id = a->worker_id,
                          .hostname = a->hostname};
        rc = pool_start(a->broker, &pc, &a->pool, &err);
    }
    if (rc != BP_OK) {
        fprintf(stderr, "betpipe daemon: cannot start the worker pools: %s\n", err.msg);
        free(specs);
        free(qs);
        app_close(a);
        return 4;
    }
    bt = start_beat(a, o);
    {
        char *run_dir = util_asprintf("%s/run", a->cfg->data_dir);
        if (!run_dir || control_server_start(run_dir, a->worker_id, handle_control_serial, a, &ctl,
                                             &err) != BP_OK) {
            log_warn("daemon",
                     "no control socket (inspect/control will not reach this daemon): "
                     "%s",
                     err.msg);
        }
        free(run_dir);
        /* On a Redis broker, inspect/control reach every daemon through Redis, on any host. */
        if (broker_url_is_redis(a->cfg->broker_url) &&
            control_redis_server_start(a->cfg->broker_url, a->worker_id, handle_control_serial, a,
                                       &rctl, &err) != BP_OK) {
            log_warn("daemon",
                     "no control channel over Redis (inspect/control from other hosts will "
                     "not reach this daemon): %s",
                     err.msg);
        }
    }
    {
        char line[1024] = "";
        size_t used = 0;
        for (size_t i = 0; i < n; i++) {
            int k = snprintf(line + used, sizeof line - used, "%s%s=%d", i ? " " : "", qs[i].name,
                             qs[i].concurrency);
            used += k > 0 && (size_t)k < sizeof line - used ? (size_t)k : 0;
        }
        log_info("daemon", "ready worker=%s broker=%s data_dir=%s queues: %s", a->worker_id,
                 a->broker->ops->name, a->cfg->data_dir, line);
    }

    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            if (n_retired < BP_ARRAY_LEN(retired)) {
                if (reload(a, o, retired, &n_retired)) {
                    reload_beat(a, o, &bt);
                }
            } else {
                log_warn("daemon", "SIGHUP ignored: too many reloads, restart the daemon");
            }
            continue;
        }
        break;
    }

    beat_stop(bt, NULL);
    bt = NULL;
    {
        int64_t grace = o->grace_ms >= 0 ? o->grace_ms : a->cfg->shutdown_grace_ms;
        int left;
        log_info("daemon",
                 "stopping: no new jobs; running jobs have %lld ms to finish "
                 "(send the signal again to stop sooner)",
                 (long long)grace);
        hurry_watch watch = {.pool = a->pool, .set = set};
        pthread_t watcher;
        bool watching;
        atomic_init(&watch.done, false);
        watching = pthread_create(&watcher, NULL, hurry_main, &watch) == 0;
        left = pool_stop(a->pool, grace, 5000);
        atomic_store(&watch.done, true);
        if (watching) {
            pthread_join(watcher, NULL);
        }
        if (left > 0) {
            /* Threads are stuck in plugin code that ignores cancellation: release the leases
             * so the jobs run again elsewhere, keep the history, and leave without unloading
             * plugins from under those threads. */
            log_warn("daemon",
                     "%d job(s) did not stop; their leases are released so they run "
                     "again on the next worker",
                     left);
            a->broker->ops->worker_stop(a->broker, a->worker_id, NULL);
            history_flush(a->history);
            return 1;
        }
    }
    control_server_stop(ctl); /* after the drain: `inspect active` works during it */
    control_redis_server_stop(rctl);
    if (a->broker->ops->worker_stop(a->broker, a->worker_id, &err) != BP_OK) {
        log_warn("daemon", "could not unregister: %s", err.msg);
    }
    pool_destroy(a->pool);
    a->pool = NULL;
    history_flush(a->history);
    log_info("daemon", "stopped worker=%s", a->worker_id);
    free(specs);
    free(qs);
    app_close(a);
    for (size_t i = 0; i < n_retired; i++) {
        config_free(retired[i]);
    }
    return exit_code;
}
