/*
 * cli.c - `betpipe`: global options, the command table, help, and the commands that manage jobs
 * (run, task, status, jobs, purge, revoke), plugins and configuration.
 *
 * Every command prints human-readable text by default and JSON with --json. Exit codes are
 * documented in cli.h and in `betpipe --help`.
 */
#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "beat.h"
#include "cli_util.h"
#include "client.h"
#include "daemon.h"
#include "exec.h"
#include "isolate.h"
#include "log.h"
#include "schedule.h"
#include "util.h"

/* ============================================================================================
 * Parsing
 * ========================================================================================== */

static const cli_opt global_opts[] = {
    {"data-dir", true,
     "DIR     instance directory (default $BETPIPE_DATA_DIR or "
     "~/.local/share/betpipe)"},
    {"config", true, "FILE      config file (default $BETPIPE_CONFIG, <data-dir>/betpipe.json)"},
    {"broker", true,
     "URL       broker: redis://host:port/db, unix:///path.sock, "
     "sqlite:///path.db"},
    {"plugin-dir", true, "DIR   where plugins are loaded from (':'-separated list)"},
    {"log-level", true, "LEVEL   error, warn, info, debug, trace"},
    {"json", false, "          machine-readable output"},
    {"help", false, "          show help"},
};

static int parse_global(cli_args *a, const char *name, const char *value)
{
    if (strcmp(name, "data-dir") == 0) {
        a->ov.data_dir = value;
    } else if (strcmp(name, "config") == 0) {
        a->ov.config_path = value;
    } else if (strcmp(name, "broker") == 0) {
        a->ov.broker_url = value;
    } else if (strcmp(name, "plugin-dir") == 0) {
        a->ov.plugin_dir = value;
    } else if (strcmp(name, "log-level") == 0) {
        a->ov.log_level = value;
    } else if (strcmp(name, "json") == 0) {
        a->json = true;
    } else if (strcmp(name, "help") == 0) {
        a->help = true;
    } else {
        return BP_E_NOTFOUND;
    }
    return BP_OK;
}

/* Parse argv[from..] for a command accepting `opts`; global options are accepted anywhere. */
static int parse_args(int argc, char **argv, int from, const cli_opt *opts, int n_opts, cli_args *a,
                      bp_error *err)
{
    a->opts = opts;
    a->n_opts = n_opts;
    for (int i = from; i < argc; i++) {
        const char *arg = argv[i];
        char name[64];
        const char *value = NULL;
        const char *eq;
        bool matched = false;
        if (strcmp(arg, "--") == 0) {
            for (i++; i < argc && a->n_positional < 16; i++) {
                a->positional[a->n_positional++] = argv[i];
            }
            break;
        }
        if (strcmp(arg, "-h") == 0) {
            a->help = true;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            if (a->n_positional >= 16) {
                return bp_err(err, BP_E_INVAL, "too many arguments");
            }
            a->positional[a->n_positional++] = arg;
            continue;
        }
        eq = strchr(arg, '=');
        util_strlcpy(name, arg + 2,
                     eq && (size_t)(eq - arg - 2) < sizeof name ? (size_t)(eq - arg - 2) + 1
                                                                : sizeof name);
        if (eq) {
            value = eq + 1;
        }
        for (size_t g = 0; g < BP_ARRAY_LEN(global_opts); g++) {
            if (strcmp(global_opts[g].name, name) == 0) {
                if (global_opts[g].has_arg && !value) {
                    if (i + 1 >= argc) {
                        return bp_err(err, BP_E_INVAL, "--%s needs a value", name);
                    }
                    value = argv[++i];
                }
                parse_global(a, name, value ? value : "");
                matched = true;
            }
        }
        for (int k = 0; !matched && k < n_opts; k++) {
            if (strcmp(opts[k].name, name) == 0) {
                if (opts[k].has_arg && !value) {
                    if (i + 1 >= argc) {
                        return bp_err(err, BP_E_INVAL, "--%s needs a value", name);
                    }
                    value = argv[++i];
                } else if (!opts[k].has_arg && value) {
                    return bp_err(err, BP_E_INVAL, "--%s takes no value", name);
                }
                a->values[k] = value ? value : "";
                matched = true;
            }
        }
        if (!matched) {
            return bp_err(err, BP_E_INVAL, "unknown option --%s (see betpipe %s --help)", name,
                          a->command ? a->command : "");
        }
    }
    return BP_OK;
}

/* ============================================================================================
 * Output helpers
 * ========================================================================================== */

static void print_time(const char *label, int64_t ms, const char *extra)
{
    char buf[40];
    if (ms <= 0) {
        printf("%-10s -\n", label);
        return;
    }
    util_format_iso8601(ms, buf, sizeof buf);
    printf("%-10s %s%s\n", label, buf, extra ? extra : "");
}

static void print_job(const job *j)
{
    char extra[64];
    printf("%-10s %s\n", "id", j->id);
    printf("%-10s %s\n", "type", j->type ? j->type : "-");
    printf("%-10s %s\n", "queue", j->queue ? j->queue : "-");
    printf("%-10s %s\n", "state", job_state_name(j->state));
    printf("%-10s %d (max retries %d)%s\n", "attempts", j->attempts, j->max_retries,
           j->crashes ? " - worker crashed under it" : "");
    if (j->crashes) {
        printf("%-10s %d\n", "crashes", j->crashes);
    }
    printf("%-10s %d\n", "priority", j->priority);
    print_time("created", j->created_ms, NULL);
    if (j->eta_ms > 0) {
        print_time("eta", j->eta_ms, NULL);
    }
    if (j->expires_ms > 0) {
        print_time("expires", j->expires_ms, NULL);
    }
    snprintf(extra, sizeof extra, "  (waited %lld ms)",
             (long long)(j->started_ms - (j->eta_ms > j->created_ms ? j->eta_ms : j->created_ms)));
    print_time("started", j->started_ms, j->started_ms > 0 ? extra : NULL);
    snprintf(extra, sizeof extra, "  (ran %lld ms)", (long long)(j->finished_ms - j->started_ms));
    print_time("finished", j->finished_ms, j->finished_ms > 0 && j->started_ms > 0 ? extra : NULL);
    printf("%-10s %s\n", "worker", j->worker ? j->worker : "-");
    if (j->parent_id) {
        printf("%-10s %s\n", "parent", j->parent_id);
    }
    if (j->unique_key) {
        printf("%-10s %s\n", "unique", j->unique_key);
    }
    if (j->progress >= 0 && !job_state_is_final(j->state)) {
        printf("%-10s %.0f%% %s\n", "progress", j->progress * 100,
               j->progress_msg ? j->progress_msg : "");
    }
    printf("%-10s %s\n", "args", j->args ? j->args : "{}");
    if (j->result) {
        json_t *r = json_loads(j->result, JSON_DECODE_ANY, NULL);
        char *pretty = r ? json_dumps(r, JSON_INDENT(2) | JSON_ENCODE_ANY) : NULL;
        printf("%-10s %s\n", "result", pretty ? pretty : j->result);
        free(pretty);
        json_decref(r);
    }
    if (j->error) {
        printf("%-10s %s\n", "error", j->error);
    }
}

/* ============================================================================================
 * run
 * ========================================================================================== */

static const cli_opt run_opts[] = {
    {"args", true, "JSON        job arguments as a JSON object (default {})"},
    {"arg", true, "KEY=VALUE    one argument (VALUE parsed as JSON, else a string); repeatable"},
    {"queue", true, "Q          queue (default: the job type's)"},
    {"countdown", true, "DUR    run no earlier than now + DUR (e.g. 30, 10s, 5m)"},
    {"eta", true, "TIME         run no earlier than TIME (ISO 8601, e.g. 2026-11-22T10:15Z)"},
    {"expires", true, "DUR|TIME drop the job (EXPIRED) if not started by then"},
    {"priority", true, "N       0-9, higher runs first (default 5)"},
    {"max-retries", true, "N    retries on transient failure (default: the type's)"},
    {"unique-key", true, "K     refuse the job while another live job holds K"},
    {"id", true, "ID            choose the job id (idempotent enqueue)"},
    {"wait", false, "           wait for the result and print it"},
    {"timeout", true, "DUR      with --wait: give up after DUR (exit code 6)"},
    {"no-inline", false, "      with --wait: never run the job in this process"},
};

typedef struct inline_hb {
    app *app;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
} inline_hb;

/* Keep the inline run's lease alive while the job runs in this process. */
static void *inline_heartbeat(void *arg)
{
    inline_hb *hb = arg;
    app *a = hb->app;
    json_t *queues = json_object();
    broker_worker_info wi = {.id = a->worker_id,
                             .host = a->hostname,
                             .pid = (int)getpid(),
                             .queues = queues,
                             .started_ms = util_now_ms()};
    pthread_mutex_lock(&hb->lock);
    while (!hb->stop) {
        struct timespec until;
        json_t *revoked = NULL;
        pthread_mutex_unlock(&hb->lock);
        a->broker->ops->heartbeat(a->broker, &wi, NULL, NULL, &revoked, NULL);
        json_decref(revoked);
        pthread_mutex_lock(&hb->lock);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)(a->cfg->broker_opts.lease_ms / 3000) + 1;
        if (!hb->stop) { /* a stop sent while we were heartbeating must not be missed */
            pthread_cond_timedwait(&hb->cond, &hb->lock, &until);
        }
    }
    pthread_mutex_unlock(&hb->lock);
    json_decref(queues);
    return NULL;
}

/* Run job `id` in this process until it is final (retries included), as a worker would. */
static int run_inline(app *a, const char *id, int64_t deadline, bp_error *err)
{
    inline_hb hb = {.app = a};
    pthread_t hb_thread;
    bool hb_started;
    int rc = BP_OK;
    pthread_mutex_init(&hb.lock, NULL);
    pthread_cond_init(&hb.cond, NULL);
    hb_started = pthread_create(&hb_thread, NULL, inline_heartbeat, &hb) == 0;
    for (;;) {
        job *cur = NULL, *leased = NULL;
        pool_task task;
        pool_outcome out;
        broker_ack ack;
        job **none = NULL;
        size_t n_none = 0;
        rc = client_get(a, id, &cur, err);
        if (rc != BP_OK || job_state_is_final(cur->state)) {
            job_free(cur);
            break;
        }
        if ((cur->state == JOB_SCHEDULED || cur->state == JOB_RETRY) &&
            cur->eta_ms > util_now_ms()) {
            int64_t wait = cur->eta_ms - util_now_ms();
            job_free(cur);
            if (util_now_ms() + wait > deadline) {
                rc = bp_err(err, BP_E_TIMEOUT, "job %s is not due before the timeout", id);
                break;
            }
            util_sleep_ms(wait);
            continue;
        }
        job_free(cur);
        rc = a->broker->ops->lease_one(a->broker, a->worker_id, id, &leased, err);
        if (rc == BP_E_STATE) {
            rc = BP_OK; /* someone else took it: wait for them */
            break;
        }
        if (rc != BP_OK) {
            break;
        }
        memset(&task, 0, sizeof task);
        task.job = leased;
        task.progress = -1;
        atomic_init(&task.cancel, POOL_CANCEL_NONE);
        task.soft_deadline_ms =
            leased->soft_time_limit_ms > 0 ? leased->started_ms + leased->soft_time_limit_ms : 0;
        exec_run_inline(a, &task, &out);
        ack = (broker_ack){.id = leased->id,
                           .state = out.state,
                           .result = out.result,
                           .error = out.error,
                           .retry_at_ms = out.retry_at_ms,
                           .finished_ms = util_now_ms()};
        rc = a->broker->ops->exchange(a->broker, a->worker_id, &ack, 1, NULL, 0, &none, &n_none,
                                      err);
        free(none);
        free(out.result);
        free(out.error);
        job_free(leased);
        if (rc != BP_OK) {
            break;
        }
    }
    if (hb_started) {
        pthread_mutex_lock(&hb.lock);
        hb.stop = true;
        pthread_cond_signal(&hb.cond);
        pthread_mutex_unlock(&hb.lock);
        pthread_join(hb_thread, NULL);
    }
    a->broker->ops->worker_stop(a->broker, a->worker_id, NULL);
    pthread_mutex_destroy(&hb.lock);
    pthread_cond_destroy(&hb.cond);
    return rc;
}

/* Parse --arg KEY=VALUE occurrences from argv (they may repeat, which cli_args cannot hold). */
static int collect_arg_pairs(int argc, char **argv, json_t *args, bp_error *err)
{
    for (int i = 2; i < argc; i++) {
        const char *kv = NULL;
        if (strcmp(argv[i], "--arg") == 0 && i + 1 < argc) {
            kv = argv[++i];
        } else if (strncmp(argv[i], "--arg=", 6) == 0) {
            kv = argv[i] + 6;
        }
        if (kv) {
            const char *eq = strchr(kv, '=');
            char key[128];
            json_t *v;
            if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof key) {
                return bp_err(err, BP_E_INVAL, "--arg '%s' is not KEY=VALUE", kv);
            }
            util_strlcpy(key, kv, (size_t)(eq - kv) + 1);
            v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
            json_object_set_new(args, key, v ? v : json_string(eq + 1));
        }
    }
    return BP_OK;
}

static int parse_time_or_duration(const char *s, const char *what, int64_t *out_abs_ms,
                                  bp_error *err)
{
    int64_t ms;
    if (util_parse_duration_ms(s, &ms, NULL) == BP_OK) {
        *out_abs_ms = util_now_ms() + ms;
        return BP_OK;
    }
    if (util_parse_iso8601(s, &ms, NULL) == BP_OK) {
        *out_abs_ms = ms;
        return BP_OK;
    }
    return bp_err(err, BP_E_INVAL, "%s: '%s' is neither a duration (30s, 5m) nor an ISO 8601 time",
                  what, s);
}

static int cmd_run(cli_args *a, int argc, char **argv)
{
    app *ap = NULL;
    bp_error err = {0};
    json_t *args = NULL;
    bp_enqueue_opts opts = {.struct_size = sizeof opts};
    const char *v;
    char id[BP_JOB_ID_SIZE];
    int64_t timeout_ms = -1;
    job *j = NULL;
    int rc;

    if (a->n_positional != 1) {
        return cli_fail(a, BP_E_INVAL, "usage: betpipe run TYPE [options] (see --help)");
    }
    v = cli_opt_value(a, "args");
    if (v) {
        json_error_t jerr;
        args = json_loads(v, 0, &jerr);
        if (!args) {
            snprintf(err.msg, sizeof err.msg, "--args is not valid JSON (column %d): %s",
                     jerr.column, jerr.text);
            return cli_fail(a, BP_E_INVAL, err.msg);
        }
        if (!json_is_object(args)) {
            json_decref(args);
            return cli_fail(a, BP_E_INVAL,
                            "--args must be a JSON object, e.g. '{\"league\": "
                            "\"E0\"}'");
        }
    } else {
        args = json_object();
    }
    if (collect_arg_pairs(argc, argv, args, &err) != BP_OK) {
        json_decref(args);
        return cli_fail(a, BP_E_INVAL, err.msg);
    }
    opts.queue = cli_opt_value(a, "queue");
    opts.unique_key = cli_opt_value(a, "unique-key");
    opts.job_id = cli_opt_value(a, "id");
    rc = BP_OK;
    if ((v = cli_opt_value(a, "countdown")) != NULL) {
        rc = util_parse_duration_ms(v, &opts.countdown_ms, &err);
        if (rc != BP_OK) {
            bp_err_prefix(&err, "--countdown: ");
        }
    }
    if (rc == BP_OK && (v = cli_opt_value(a, "eta")) != NULL) {
        if (cli_opt_value(a, "countdown")) {
            rc = bp_err(&err, BP_E_INVAL, "--eta and --countdown exclude each other");
        } else {
            rc = util_parse_iso8601(v, &opts.eta_ms, &err);
            if (rc != BP_OK) {
                bp_err_prefix(&err, "--eta: ");
            }
        }
    }
    if (rc == BP_OK && (v = cli_opt_value(a, "expires")) != NULL) {
        rc = parse_time_or_duration(v, "--expires", &opts.expires_ms, &err);
    }
    if (rc == BP_OK && (v = cli_opt_value(a, "priority")) != NULL) {
        int64_t p;
        rc = util_parse_int64(v, BP_PRIORITY_MIN, BP_PRIORITY_MAX, "--priority", &p, &err);
        opts.priority = (int32_t)p;
        opts.has_priority = 1;
    }
    if (rc == BP_OK && (v = cli_opt_value(a, "max-retries")) != NULL) {
        int64_t m;
        rc = util_parse_int64(v, 0, 1000, "--max-retries", &m, &err);
        opts.max_retries = (int32_t)m;
        opts.has_max_retries = 1;
    }
    if (rc == BP_OK && (v = cli_opt_value(a, "timeout")) != NULL) {
        rc = util_parse_duration_ms(v, &timeout_ms, &err);
        if (rc != BP_OK) {
            bp_err_prefix(&err, "--timeout: ");
        }
    }
    if (rc != BP_OK) {
        json_decref(args);
        return cli_fail(a, BP_E_INVAL, err.msg);
    }
    if ((rc = cli_open_app(a, APP_ALL, &ap)) != 0) {
        json_decref(args);
        return rc;
    }
    rc = client_enqueue(ap, a->positional[0], args, &opts, NULL, id, &err);
    json_decref(args);
    if (rc != BP_OK) {
        int code = cli_fail(a, rc, err.msg);
        app_close(ap);
        return rc == BP_E_NOTFOUND ? CLI_EXIT_USAGE : code;
    }
    if (!cli_flag(a, "wait")) {
        if (a->json) {
            json_t *o = json_pack("{s:s, s:s}", "id", id, "state", "enqueued");
            cli_print_json(o);
            json_decref(o);
        } else {
            printf("%s\n", id);
        }
        app_close(ap);
        return CLI_EXIT_OK;
    }

    /* --wait: if nobody serves the queue, be the worker for this one job. */
    if (client_get(ap, id, &j, &err) == BP_OK && !cli_flag(a, "no-inline") &&
        !client_queue_served(ap, j->queue)) {
        if (!a->json) {
            fprintf(stderr, "betpipe run: no daemon serves %s; running %s in this process\n",
                    j->queue, id);
        }
        rc = run_inline(ap, id, timeout_ms < 0 ? INT64_MAX : util_now_ms() + timeout_ms, &err);
        if (rc != BP_OK && rc != BP_E_TIMEOUT) {
            job_free(j);
            int code = cli_fail(a, rc, err.msg);
            app_close(ap);
            return code;
        }
    }
    job_free(j);
    j = NULL;
    rc = client_wait(ap, id, timeout_ms, &j, &err);
    if (j) {
        if (a->json) {
            json_t *o = job_to_json(j);
            cli_print_json(o);
            json_decref(o);
        } else {
            printf("%s %s %s", j->id, j->type, job_state_name(j->state));
            if (j->finished_ms > 0 && j->started_ms > 0) {
                printf(" in %lld ms", (long long)(j->finished_ms - j->started_ms));
            }
            printf(" (attempts: %d)\n", j->attempts);
            if (j->result) {
                json_t *r = json_loads(j->result, JSON_DECODE_ANY, NULL);
                char *pretty = r ? json_dumps(r, JSON_INDENT(2) | JSON_ENCODE_ANY) : NULL;
                printf("%s\n", pretty ? pretty : j->result);
                free(pretty);
                json_decref(r);
            }
            if (j->error) {
                printf("error: %s\n", j->error);
            }
        }
    }
    if (rc == BP_E_TIMEOUT) {
        fprintf(stderr, "betpipe run: %s\n", err.msg);
        rc = CLI_EXIT_TIMEOUT;
    } else if (rc != BP_OK) {
        rc = cli_fail(a, rc, err.msg);
    } else {
        rc = j && j->state == JOB_SUCCESS ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
    }
    job_free(j);
    app_close(ap);
    return rc;
}

/* ============================================================================================
 * task, status, jobs, purge, revoke
 * ========================================================================================== */

static int cmd_task(cli_args *a, int argc, char **argv)
{
    app *ap = NULL;
    job *j = NULL;
    bp_error err = {0};
    int rc;
    (void)argc;
    (void)argv;
    if (a->n_positional != 1) {
        return cli_fail(a, BP_E_INVAL, "usage: betpipe task ID");
    }
    if ((rc = cli_open_app(a, APP_BROKER, &ap)) != 0) {
        return rc;
    }
    rc = client_get(ap, a->positional[0], &j, &err);
    if (rc != BP_OK) {
        rc = cli_fail(a, rc, err.msg);
        app_close(ap);
        return rc;
    }
    if (a->json) {
        json_t *o = job_to_json(j);
        cli_print_json(o);
        json_decref(o);
    } else {
        print_job(j);
    }
    job_free(j);
    app_close(ap);
    return CLI_EXIT_OK;
}

static int cmd_status(cli_args *a, int argc, char **argv)
{
    static const char *const cols[] = {"waiting",   "delayed", "running", "retry",
                                       "succeeded", "failed",  "dead"};
    app *ap = NULL;
    json_t *stats = NULL, *queues, *w;
    bp_error err = {0};
    size_t i;
    int rc;
    (void)argc;
    (void)argv;
    if ((rc = cli_open_app(a, APP_BROKER, &ap)) != 0) {
        return rc;
    }
    rc = ap->broker->ops->stats(ap->broker, &stats, &err);
    if (rc != BP_OK) {
        rc = cli_fail(a, rc, err.msg);
        app_close(ap);
        return rc;
    }
    /* Every configured queue appears, even when it has never seen a job. */
    queues = json_object_get(stats, "queues");
    for (i = 0; i < ap->cfg->n_queues; i++) {
        if (!json_object_get(queues, ap->cfg->queues[i].name)) {
            json_t *empty = json_object();
            for (size_t c = 0; c < BP_ARRAY_LEN(cols); c++) {
                json_object_set_new(empty, cols[c], json_integer(0));
            }
            json_object_set_new(queues, ap->cfg->queues[i].name, empty);
        }
    }
    if (a->json) {
        json_t *lim = NULL;
        if (ap->broker->ops->limits(ap->broker, &lim, NULL) == BP_OK) {
            json_object_set_new(stats, "limits", lim);
        }
        cli_print_json(stats);
    } else {
        const char *name;
        json_t *q;
        printf("broker: %s (%s)\n\n", ap->broker->ops->name,
               *ap->cfg->broker_url ? ap->cfg->broker_source : ap->cfg->data_dir);
        printf("%-22s", "QUEUE");
        for (size_t c = 0; c < BP_ARRAY_LEN(cols); c++) {
            printf(" %9s", cols[c]);
        }
        printf("\n");
        json_object_foreach(queues, name, q)
        {
            printf("%-22s", name);
            for (size_t c = 0; c < BP_ARRAY_LEN(cols); c++) {
                printf(" %9lld", (long long)json_integer_value(json_object_get(q, cols[c])));
            }
            printf("\n");
        }
        printf("\nworkers: %zu\n", json_array_size(json_object_get(stats, "workers")));
        json_array_foreach(json_object_get(stats, "workers"), i, w)
        {
            const char *qn;
            json_t *qc, *ws = json_object_get(w, "stats");
            int64_t age = json_integer_value(json_object_get(w, "heartbeat_age_ms"));
            bool offline = json_is_false(json_object_get(w, "online")) ||
                           age > ap->cfg->broker_opts.worker_timeout_ms;
            printf("  %s  %s  heartbeat %.1f s ago  queues:",
                   json_string_value(json_object_get(w, "id")), offline ? "OFFLINE" : "online",
                   (double)age / 1000.0);
            json_object_foreach(json_object_get(w, "queues"), qn, qc)
            {
                printf(" %s=%lld", qn, (long long)json_integer_value(qc));
            }
            if (json_is_integer(json_object_get(ws, "processed"))) {
                printf("  processed %lld failed %lld load %.2f rss %.1f MiB",
                       (long long)json_integer_value(json_object_get(ws, "processed")),
                       (long long)json_integer_value(json_object_get(ws, "failed")),
                       json_number_value(json_object_get(ws, "load1")),
                       (double)json_integer_value(json_object_get(ws, "rss_kb")) / 1024.0);
            }
            printf("\n");
        }
        {
            json_t *lim = NULL, *v;
            const char *k;
            if (ap->broker->ops->limits(ap->broker, &lim, NULL) == BP_OK &&
                (json_object_size(json_object_get(lim, "rate_limits")) > 0 ||
                 json_object_size(json_object_get(lim, "queue_caps")) > 0)) {
                printf("\nlimits (every worker):\n");
                json_object_foreach(json_object_get(lim, "rate_limits"), k, v)
                {
                    printf("  rate %-30s %s\n", k, json_string_value(v));
                }
                json_object_foreach(json_object_get(lim, "queue_caps"), k, v)
                {
                    printf("  cap  %-30s %lld at once\n", k, (long long)json_integer_value(v));
                }
            }
            json_decref(lim);
        }
    }
    json_decref(stats);
    app_close(ap);
    return CLI_EXIT_OK;
}

static const cli_opt jobs_opts[] = {
    {"queue", true, "Q       only this queue"},
    {"state", true, "STATE   only this state (PENDING, STARTED, SUCCESS, FAILURE, ...)"},
    {"type", true, "TYPE     only this job type"},
    {"limit", true, "N       at most N jobs (default 20)"},
    {"history", false, "     read the permanent job history instead of the broker"},
};

static int cmd_jobs(cli_args *a, int argc, char **argv)
{
    app *ap = NULL;
    json_t *list = NULL, *o;
    bp_error err = {0};
    broker_filter f = {.queue = cli_opt_value(a, "queue"),
                       .state = -1,
                       .type = cli_opt_value(a, "type"),
                       .limit = 20};
    const char *v;
    size_t i;
    int rc;
    (void)argc;
    (void)argv;
    if ((v = cli_opt_value(a, "state")) != NULL) {
        job_state st;
        if (job_state_parse(v, &st) != BP_OK) {
            return cli_fail(a, BP_E_INVAL,
                            "--state: unknown state (PENDING, SCHEDULED, STARTED, "
                            "RETRY, SUCCESS, FAILURE, REVOKED, EXPIRED, DEAD)");
        }
        f.state = (int)st;
    }
    if ((v = cli_opt_value(a, "limit")) != NULL) {
        int64_t n;
        if (util_parse_int64(v, 1, 100000, "--limit", &n, &err) != BP_OK) {
            return cli_fail(a, BP_E_INVAL, err.msg);
        }
        f.limit = (int)n;
    }
    if ((rc = cli_open_app(a, APP_BROKER, &ap)) != 0) {
        return rc;
    }
    rc = cli_flag(a, "history")
             ? store_history_list(ap->store, f.queue, f.type, f.state, f.limit, &list, &err)
             : ap->broker->ops->list(ap->broker, &f, &list, &err);
    if (rc != BP_OK) {
        rc = cli_fail(a, rc, err.msg);
        app_close(ap);
        return rc;
    }
    if (a->json) {
        cli_print_json(list);
    } else {
        printf("%-36s  %-22s %-18s %-9s %8s  %s\n", "ID", "TYPE", "QUEUE", "STATE", "RUN ms",
               "FINISHED");
        json_array_foreach(list, i, o)
        {
            json_t *fin = json_object_get(o, "finished");
            char runtime[24] = "-";
            if (json_is_integer(json_object_get(o, "runtime_ms"))) {
                snprintf(runtime, sizeof runtime, "%lld",
                         (long long)json_integer_value(json_object_get(o, "runtime_ms")));
            }
            printf("%-36s  %-22s %-18s %-9s %8s  %s\n", json_string_value(json_object_get(o, "id")),
                   json_string_value(json_object_get(o, "type")),
                   json_string_value(json_object_get(o, "queue")),
                   json_string_value(json_object_get(o, "state")), runtime,
                   json_is_string(fin) ? json_string_value(fin) : "-");
        }
    }
    json_decref(list);
    app_close(ap);
    return CLI_EXIT_OK;
}

static int cmd_purge(cli_args *a, int argc, char **argv)
{
    app *ap = NULL;
    bp_error err = {0};
    int64_t removed = 0;
    int rc;
    (void)argc;
    (void)argv;
    if (a->n_positional != 1) {
        return cli_fail(a, BP_E_INVAL, "usage: betpipe purge QUEUE");
    }
    if ((rc = cli_open_app(a, APP_BROKER, &ap)) != 0) {
        return rc;
    }
    if (!config_find_queue(ap->cfg, a->positional[0])) {
        snprintf(err.msg, sizeof err.msg, "unknown queue '%s' (known: %s)", a->positional[0],
                 config_queue_names(ap->cfg));
        rc = cli_fail(a, BP_E_NOTFOUND, err.msg);
        app_close(ap);
        return rc;
    }
    rc = ap->broker->ops->purge(ap->broker, a->positional[0], &removed, &err);
    if (rc != BP_OK) {
        rc = cli_fail(a, rc, err.msg);
        app_close(ap);
        return rc;
    }
    if (a->json) {
        json_t *o =
            json_pack("{s:s, s:I}", "queue", a->positional[0], "purged", (json_int_t)removed);
        cli_print_json(o);
        json_decref(o);
    } else {
        printf("purged %lld waiting job(s) from %s\n", (long long)removed, a->positional[0]);
    }
    app_close(ap);
    return CLI_EXIT_OK;
}

static const cli_opt revoke_opts[] = {
    {"terminate", false, "     a running job in a process of its own is killed, not asked"},
};

static int cmd_revoke(cli_args *a, int argc, char **argv)
{
    app *ap = NULL;
    bp_error err = {0};
    job_state st;
    int rc;
    (void)argc;
    (void)argv;
    if (a->n_positional != 1) {
        return cli_fail(a, BP_E_INVAL, "usage: betpipe revoke ID");
    }
    if ((rc = cli_open_app(a, APP_BROKER, &ap)) != 0) {
        return rc;
    }
    rc = ap->broker->ops->revoke(ap->broker, a->positional[0], cli_flag(a, "terminate"), &st, &err);
    if (rc != BP_OK) {
        rc = cli_fail(a, rc, err.msg);
        app_close(ap);
        return rc;
    }
    if (a->json) {
        json_t *o = json_pack("{s:s, s:s}", "id", a->positional[0], "state", job_state_name(st));
        cli_print_json(o);
        json_decref(o);
    } else if (st == JOB_STARTED) {
        printf("job %s is running: its worker has been asked to stop it\n", a->positional[0]);
    } else {
        printf("job %s revoked\n", a->positional[0]);
    }
    app_close(ap);
    return CLI_EXIT_OK;
}

/* ============================================================================================
 * plugins, config
 * ========================================================================================== */

static int cmd_plugins(cli_args *a, int argc, char **argv)
{
    app *ap = NULL;
    bp_error err = {0};
    json_t *desc = NULL, *p;
    size_t i;
    int rc;
    (void)argc;
    (void)argv;
    if (a->n_positional >= 1 && strcmp(a->positional[0], "check") == 0) {
        json_t *report = NULL;
        if (a->n_positional != 2) {
            return cli_fail(a, BP_E_INVAL, "usage: betpipe plugins check FILE");
        }
        if ((rc = cli_open_app(a, APP_STORE, &ap)) != 0) {
            return rc;
        }
        rc = loader_check_file(a->positional[1], host_for_plugin, host_release, ap, &report, &err);
        if (rc != BP_OK) {
            /* A plugin that fails a check is the operation failing (exit 1), whatever the check;
             * only a file that is not there is "not found". */
            int code = cli_fail(a, rc, err.msg);
            app_close(ap);
            return code == CLI_EXIT_NOTFOUND ? code : CLI_EXIT_FAILURE;
        }
        if (a->json) {
            cli_print_json(report);
        } else {
            char *s = json_dumps(report, JSON_INDENT(2));
            printf("ok: %s\n%s\n", a->positional[1], s ? s : "");
            free(s);
        }
        json_decref(report);
        app_close(ap);
        return CLI_EXIT_OK;
    }
    if (a->n_positional != 0) {
        return cli_fail(a, BP_E_INVAL, "usage: betpipe plugins [check FILE]");
    }
    if ((rc = cli_open_app(a, APP_STORE | APP_PLUGINS, &ap)) != 0) {
        return rc;
    }
    rc = loader_describe(ap->loader, &desc, &err);
    if (rc != BP_OK) {
        rc = cli_fail(a, rc, err.msg);
        app_close(ap);
        return rc;
    }
    if (a->json) {
        json_t *o = json_pack("{s:O, s:O, s:s}", "plugins", desc, "load_report", ap->plugin_report,
                              "plugin_dir", ap->cfg->plugin_dir);
        cli_print_json(o);
        json_decref(o);
    } else {
        printf("plugin dir: %s\n\n", ap->cfg->plugin_dir);
        json_array_foreach(desc, i, p)
        {
            static const char *const kinds[] = {"job_types", "models", "collectors", "notifiers"};
            printf("%s %s  (ABI %s)  %s\n  %s\n", json_string_value(json_object_get(p, "name")),
                   json_string_value(json_object_get(p, "version")),
                   json_string_value(json_object_get(p, "abi")),
                   json_string_value(json_object_get(p, "file")),
                   json_string_value(json_object_get(p, "description")));
            for (size_t k = 0; k < BP_ARRAY_LEN(kinds); k++) {
                size_t m;
                json_t *item;
                json_array_foreach(json_object_get(p, kinds[k]), m, item)
                {
                    const char *q = json_string_value(json_object_get(item, "queue"));
                    printf("    %-10s %-24s %s%s%s\n",
                           k == 0   ? "job"
                           : k == 1 ? "model"
                           : k == 2 ? "collector"
                                    : "notifier",
                           json_string_value(json_object_get(item, "name")), q ? "[" : "",
                           q ? q : "", q ? "] " : "");
                }
            }
            printf("\n");
        }
        json_array_foreach(ap->plugin_report, i, p)
        {
            if (!json_is_true(json_object_get(p, "ok"))) {
                printf("NOT LOADED %s\n  %s\n", json_string_value(json_object_get(p, "file")),
                       json_string_value(json_object_get(p, "error")));
            }
        }
    }
    json_decref(desc);
    app_close(ap);
    return CLI_EXIT_OK;
}

/* The beat's part of `config check`: which schedule files, and as problems every file that does
 * not load and every enabled entry that cannot run here (bad args, an unknown queue). An entry
 * whose job type no loaded plugin registers is a warning: it is reported, never dropped, and
 * fires once its plugin is installed (the shipped schedule names the whole pipeline's jobs). */
static void add_schedule_report(app *ap, json_t *report, json_t *problems, json_t *warnings)
{
    schedule_set *set = NULL;
    bp_error err = {0};
    size_t i;
    json_t *p;
    if (schedule_load_for(ap->cfg, &set, &err) != BP_OK) {
        json_array_append_new(problems,
                              json_pack("{s:s, s:s}", "beat", "config", "error", err.msg));
        return;
    }
    beat_check_entries(ap, set);
    json_object_set_new(report, "beat",
                        json_pack("{s:b, s:s, s:O, s:i}", "enabled", schedule_beat_enabled(ap->cfg),
                                  "schedules", set->source, "files", set->files, "entries",
                                  (int)set->n));
    json_array_foreach(set->problems, i, p)
    {
        json_array_append_new(problems,
                              json_pack("{s:O, s:O}", "schedule", json_object_get(p, "file"),
                                        "error", json_object_get(p, "error")));
    }
    for (i = 0; i < set->n; i++) {
        const schedule_entry *e = &set->entries[i];
        if (e->enabled && e->problem && e->type_missing) {
            json_array_append_new(warnings,
                                  json_sprintf("schedule entry %s (%s): %s; it will not fire until "
                                               "a plugin registers it",
                                               e->name, e->file, e->problem));
        } else if (e->enabled && e->problem) {
            json_array_append_new(problems, json_pack("{s:s, s:s, s:s}", "schedule_entry", e->name,
                                                      "schedule", e->file, "error", e->problem));
        }
    }
    schedule_set_free(set);
}

/* Settings under "jobs" for a type no loaded plugin registers apply to nothing: most often a
 * typo ("ml.trian"), so say which and what was probably meant. */
static void add_job_settings_report(app *ap, const json_t *report, json_t *warnings)
{
    const json_t *types = json_object_get(report, "job_types");
    const char *names[512];
    size_t n = 0, i;
    const char *type;
    json_t *v;
    json_array_foreach(types, i, v)
    {
        if (n < BP_ARRAY_LEN(names)) {
            names[n++] = json_string_value(v);
        }
    }
    json_object_foreach((json_t *)(uintptr_t)config_section(ap->cfg, "jobs"), type, v)
    {
        if (!registry_find_job(ap->reg, type)) {
            const char *hint = util_closest(type, names, n);
            json_array_append_new(
                warnings, json_sprintf("config.jobs.%s: no loaded plugin registers job type "
                                       "'%s', so these settings apply to nothing%s%s%s",
                                       type, type, hint ? " (did you mean '" : "", hint ? hint : "",
                                       hint ? "'?)" : ""));
        }
    }
}

static int cmd_config(cli_args *a, int argc, char **argv)
{
    app *ap = NULL;
    bp_error err = {0};
    json_t *report, *problems = json_array(), *p;
    size_t i;
    int rc;
    (void)argc;
    (void)argv;
    if (a->n_positional != 1 || strcmp(a->positional[0], "check") != 0) {
        json_decref(problems);
        return cli_fail(a, BP_E_INVAL, "usage: betpipe config check");
    }
    rc = app_open(&a->ov, APP_ALL | APP_QUIET, &ap, &err);
    if (rc != BP_OK) {
        json_decref(problems);
        return cli_fail(a, rc, err.msg);
    }
    report = config_effective(ap->cfg);
    json_array_foreach(ap->plugin_report, i, p)
    {
        if (!json_is_true(json_object_get(p, "ok"))) {
            json_array_append_new(problems, json_pack("{s:s, s:O}", "plugin",
                                                      json_string_value(json_object_get(p, "file")),
                                                      "error", json_object_get(p, "error")));
        }
    }
    json_object_set_new(report, "job_types", registry_names(ap->reg, REGISTRY_JOB));
    {
        /* Warnings do not make the config invalid, but must be seen: the broker's environment
         * (a Redis that may evict queue keys, or keeps nothing across a restart) and schedule
         * entries waiting for their plugin. */
        json_t *warnings = NULL;
        bp_error derr = {0};
        if (ap->broker->ops->diagnose(ap->broker, &warnings, &derr) != BP_OK) {
            warnings = json_pack("[s]", derr.msg);
        }
        if (!warnings) {
            warnings = json_array();
        }
        add_schedule_report(ap, report, problems, warnings);
        add_job_settings_report(ap, report, warnings);
        json_object_set_new(report, "warnings", warnings);
    }
    json_object_set_new(report, "problems", problems);
    if (a->json) {
        cli_print_json(report);
    } else {
        char *s = json_dumps(report, JSON_INDENT(2));
        json_t *w;
        printf("%s\n", s ? s : "");
        json_array_foreach(json_object_get(report, "warnings"), i, w)
        {
            printf("WARNING: %s\n", json_string_value(w));
        }
        printf("%s\n", json_array_size(problems) ? "config check: PROBLEMS" : "config check: ok");
        free(s);
    }
    rc = json_array_size(problems) ? CLI_EXIT_CONFIG : CLI_EXIT_OK;
    json_decref(report);
    app_close(ap);
    return rc;
}

/* ============================================================================================
 * daemon
 * ========================================================================================== */

static const cli_opt daemon_opts[] = {
    {"queues", true, "Q1,Q2        serve only these queues (default: all)"},
    {"concurrency", true, "Q=N,..  override concurrency per queue"},
    {"grace", true, "DUR           shutdown grace period (default 30s)"},
    {"no-beat", false, "            do not run the beat scheduler here"},
};

static int cmd_daemon(cli_args *a, int argc, char **argv)
{
    daemon_options o = {.ov = a->ov,
                        .queues = cli_opt_value(a, "queues"),
                        .concurrency = cli_opt_value(a, "concurrency"),
                        .grace_ms = -1,
                        .no_beat = cli_flag(a, "no-beat")};
    bp_error err = {0};
    (void)argc;
    (void)argv;
    if (a->n_positional) {
        return cli_fail(a, BP_E_INVAL, "usage: betpipe daemon [options]");
    }
    if (cli_opt_value(a, "grace") &&
        util_parse_duration_ms(cli_opt_value(a, "grace"), &o.grace_ms, &err) != BP_OK) {
        return cli_fail(a, BP_E_INVAL, err.msg);
    }
    return daemon_main(&o);
}

/* ============================================================================================
 * __exec-job: the child side of an isolated job (isolate.h); not listed in --help
 * ========================================================================================== */

static const cli_opt exec_job_opts[] = {
    {"max-memory", true, "BYTES  cap the address space (RLIMIT_AS)"},
};

static int cmd_exec_job(cli_args *a, int argc, char **argv)
{
    const char *mem = cli_opt_value(a, "max-memory");
    (void)argc;
    (void)argv;
    if (mem) {
        int64_t bytes;
        bp_error err = {0};
        if (util_parse_int64(mem, 1, INT64_MAX, "--max-memory", &bytes, &err) != BP_OK ||
            isolate_limit_memory(bytes) != BP_OK) {
            return cli_fail(a, BP_E_INVAL, err.msg[0] ? err.msg : "cannot set --max-memory");
        }
    }
    return isolate_child_main(&a->ov);
}

/* ============================================================================================
 * The command table and help
 * ========================================================================================== */

static const cli_command cmd_daemon_entry = {"daemon", "daemon [options]",
                                             "run worker pools (and the beat) until SIGTERM",
                                             CLI_OPTS(daemon_opts), cmd_daemon};

static const cli_command cmd_run_entry = {"run", "run TYPE [options]",
                                          "enqueue a job; --wait prints its result",
                                          CLI_OPTS(run_opts), cmd_run};

static const cli_command cmd_task_entry = {
    "task", "task ID", "show one job: state, timings, result or error", NULL, 0, cmd_task};

static const cli_command cmd_status_entry = {
    "status", "status", "per queue: waiting, delayed, running, failed, dead; workers",
    NULL,     0,        cmd_status};

static const cli_command cmd_jobs_entry = {"jobs", "jobs [options]",
                                           "list recent jobs (broker, or --history)",
                                           CLI_OPTS(jobs_opts), cmd_jobs};

static const cli_command cmd_purge_entry = {
    "purge", "purge QUEUE", "delete every waiting job of a queue", NULL, 0, cmd_purge};

static const cli_command cmd_revoke_entry = {"revoke", "revoke ID [--terminate]",
                                             "cancel a job (queued, delayed or running)",
                                             CLI_OPTS(revoke_opts), cmd_revoke};

static const cli_command cmd_plugins_entry = {
    "plugins",  "plugins [check FILE]", "list loaded plugins, or check one file", NULL, 0,
    cmd_plugins};

static const cli_command cmd_config_entry = {
    "config", "config check", "validate the configuration and show the effective values", NULL,
    0,        cmd_config};

static const cli_command cmd_exec_job_entry = {"__exec-job", "__exec-job",
                                               "run one job read from stdin (isolation child)",
                                               CLI_OPTS(exec_job_opts), cmd_exec_job};

static const cli_command *const commands[] = {
    &cmd_exec_job_entry, &cmd_daemon_entry,     &cmd_run_entry,       &cmd_task_entry,
    &cmd_status_entry,   &cmd_jobs_entry,       &cmd_purge_entry,     &cmd_revoke_entry,
    &cmd_plugins_entry,  &cmd_config_entry,     &cli_inspect_command, &cli_control_command,
    &cli_cache_command,  &cli_schedule_command, &cli_models_command,  &cli_monitor_command,
};

static void print_opts(const cli_opt *opts, int n)
{
    for (int i = 0; i < n; i++) {
        printf("  --%s %s\n", opts[i].name, opts[i].help);
    }
}

static void print_help(void)
{
    printf("betpipe %s - sports-betting analytics pipeline: jobs, queues, plugins\n\n", BP_VERSION);
    printf("usage: betpipe [global options] COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < BP_ARRAY_LEN(commands); i++) {
        if (strncmp(commands[i]->name, "__", 2) != 0) {
            printf("  %-24s %s\n", commands[i]->usage, commands[i]->summary);
        }
    }
    printf("\nglobal options (accepted before or after the command):\n");
    print_opts(global_opts, (int)BP_ARRAY_LEN(global_opts));
    printf("\nexit codes:\n"
           "  0  success (run --wait: the job finished in SUCCESS)\n"
           "  1  the operation failed, or the job ended FAILURE/REVOKED/EXPIRED/DEAD\n"
           "  2  bad command line or job arguments (unknown type, schema violation, bad JSON)\n"
           "  3  configuration invalid or unreadable\n"
           "  4  broker or store unavailable, unreadable or corrupt\n"
           "  5  not found (job, queue, plugin)\n"
           "  6  run --wait --timeout passed before the job finished\n");
}

int cli_main(int argc, char **argv)
{
    cli_args a = {0};
    bp_error err = {0};
    const cli_command *cmd = NULL;
    int i;

    /* Find the command: the first argument that is not a global option or its value. */
    for (i = 1; i < argc; i++) {
        bool takes_value = false;
        if (strncmp(argv[i], "--", 2) != 0 && strcmp(argv[i], "-h") != 0) {
            break;
        }
        for (size_t g = 0; g < BP_ARRAY_LEN(global_opts); g++) {
            if (strcmp(argv[i] + 2, global_opts[g].name) == 0 && global_opts[g].has_arg) {
                takes_value = true;
            }
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("betpipe %s (plugin ABI %d.%d)\n", BP_VERSION, BP_ABI_MAJOR, BP_ABI_MINOR);
            return CLI_EXIT_OK;
        }
        if (takes_value) {
            i++;
        }
    }
    if (i >= argc) {
        print_help();
        return argc > 1 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    for (size_t c = 0; c < BP_ARRAY_LEN(commands); c++) {
        if (strcmp(commands[c]->name, argv[i]) == 0) {
            cmd = commands[c];
        }
    }
    if (strcmp(argv[i], "help") == 0) {
        print_help();
        return CLI_EXIT_OK;
    }
    if (!cmd) {
        fprintf(stderr, "betpipe: unknown command '%s' (see betpipe --help)\n", argv[i]);
        return CLI_EXIT_USAGE;
    }
    a.command = cmd->name;
    /* Global options before the command, then the command's own. */
    if (parse_args(i, argv, 1, NULL, 0, &a, &err) != BP_OK ||
        parse_args(argc, argv, i + 1, cmd->opts, cmd->n_opts, &a, &err) != BP_OK) {
        return cli_fail(&a, BP_E_INVAL, err.msg);
    }
    if (a.help) {
        printf("usage: betpipe %s\n\n%s\n", cmd->usage, cmd->summary);
        if (cmd->n_opts) {
            printf("\noptions:\n");
            print_opts(cmd->opts, cmd->n_opts);
        }
        printf("\nglobal options:\n");
        print_opts(global_opts, (int)BP_ARRAY_LEN(global_opts));
        return CLI_EXIT_OK;
    }
    return cmd->fn(&a, argc, argv);
}
