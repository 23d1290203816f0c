/*
 * cli_control.c - `betpipe inspect` and `betpipe control`: talking to the
 * running daemons the way Celery's inspect/control talk to workers. With the embedded broker
 * the daemons of the instance answer on their control sockets (control.h, one host); with a
 * Redis broker every daemon sharing it answers through Redis (control_redis.h, any host).
 * (`betpipe cache`, which asks the daemons too when the cache is in memory: cli_cache.c.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cli.h"
#include "cli_util.h"
#include "control.h"
#include "control_redis.h"
#include "util.h"

static const cli_opt control_opts[] = {
    {"destination", true, "W1,W2  only these workers (ids from `betpipe status`)"},
    {"timeout", true, "DUR        how long to wait for replies (default 2s)"},
};

static int parse_timeout(cli_args *a, int64_t *out)
{
    bp_error err = {0};
    const char *v = cli_opt_value(a, "timeout");
    *out = 2000;
    if (v && util_parse_duration_ms(v, out, &err) != BP_OK) {
        return cli_fail(a, BP_E_INVAL, err.msg);
    }
    return 0;
}

int cli_ask_daemons(cli_args *a, app *ap, const char *cmd, const json_t *args, json_t **out_replies)
{
    char *run_dir;
    const char *dest = cli_opt_value(a, "destination");
    bp_error err = {0};
    int64_t timeout;
    int rc = parse_timeout(a, &timeout);
    *out_replies = NULL;
    if (rc != 0) {
        return rc;
    }
    if (broker_url_is_redis(ap->cfg->broker_url)) {
        rc = control_redis_broadcast(ap->cfg->broker_url, cmd, args, dest, timeout, out_replies,
                                     &err);
    } else {
        run_dir = util_asprintf("%s/run", ap->cfg->data_dir);
        rc = control_broadcast(run_dir, cmd, args, dest, timeout, out_replies, &err);
        free(run_dir);
    }
    return rc == BP_OK ? 0 : cli_fail(a, rc, err.msg);
}

/* Broadcast and print the replies. Exit code 0 when every daemon that answered did so without
 * an error, 1 when any answered with one (`control pool-grow` of a queue nobody serves), 5 when
 * none answered. */
static int broadcast_and_print(cli_args *a, app *ap, const char *cmd, json_t *args)
{
    json_t *replies = NULL, *r;
    const char *worker;
    bool over_redis = broker_url_is_redis(ap->cfg->broker_url);
    int rc = cli_ask_daemons(a, ap, cmd, args, &replies);
    if (rc != 0) {
        return rc;
    }
    if (json_object_size(replies) == 0) {
        json_decref(replies);
        return cli_fail(a, BP_E_NOTFOUND,
                        over_redis ? "no daemon answered (is one running on this Redis broker?)"
                                   : "no daemon answered (is one running for this data dir?)");
    }
    if (a->json) {
        cli_print_json(replies);
    } else {
        json_object_foreach(replies, worker, r)
        {
            if (json_is_true(json_object_get(r, "ok"))) {
                char *s = json_dumps(json_object_get(r, "reply"), JSON_INDENT(2) | JSON_ENCODE_ANY);
                printf("-> %s: OK\n%s\n", worker, s ? s : "");
                free(s);
            } else {
                printf("-> %s: ERROR %s\n", worker, json_string_value(json_object_get(r, "error")));
            }
        }
    }
    rc = CLI_EXIT_OK;
    json_object_foreach(replies, worker, r)
    {
        if (!json_is_true(json_object_get(r, "ok"))) {
            rc = CLI_EXIT_FAILURE;
        }
    }
    json_decref(replies);
    return rc;
}

/* ---- inspect -------------------------------------------------------------------------------- */

static int cmd_inspect(cli_args *a, int argc, char **argv)
{
    static const char *const what[] = {"ping",       "stats", "active",        "reserved",
                                       "registered", "conf",  "active_queues", "scheduled"};
    app *ap = NULL;
    int rc;
    bool known = false;
    (void)argc;
    (void)argv;
    if (a->n_positional != 1) {
        return cli_fail(a, BP_E_INVAL,
                        "usage: betpipe inspect ping|stats|active|reserved|scheduled|registered|"
                        "active_queues|conf");
    }
    for (size_t i = 0; i < sizeof what / sizeof what[0]; i++) {
        known = known || strcmp(a->positional[0], what[i]) == 0;
    }
    if (!known) {
        return cli_fail(a, BP_E_INVAL,
                        "unknown inspect command (ping, stats, active, reserved, "
                        "scheduled, registered, active_queues, conf)");
    }
    if (strcmp(a->positional[0], "scheduled") == 0 && cli_opt_value(a, "destination")) {
        return cli_fail(a, BP_E_INVAL,
                        "inspect scheduled reads the broker, where delayed and retrying jobs wait "
                        "(no daemon holds them): --destination does not apply");
    }
    if ((rc = cli_open_app(a, APP_BROKER, &ap)) != 0) {
        return rc;
    }
    if (strcmp(a->positional[0], "scheduled") == 0) {
        /* Delayed and retrying jobs wait in the broker, not in any worker's memory. */
        json_t *out = json_array(), *list = NULL;
        bp_error err = {0};
        job_state states[] = {JOB_SCHEDULED, JOB_RETRY};
        for (size_t i = 0; i < 2; i++) {
            broker_filter f = {.state = (int)states[i], .limit = 1000};
            if (ap->broker->ops->list(ap->broker, &f, &list, &err) != BP_OK) {
                json_decref(out);
                rc = cli_fail(a, err.code, err.msg);
                app_close(ap);
                return rc;
            }
            json_array_extend(out, list);
            json_decref(list);
        }
        if (a->json) {
            cli_print_json(out);
        } else {
            size_t i;
            json_t *j;
            printf("%zu scheduled or retrying job(s) in the broker\n", json_array_size(out));
            json_array_foreach(out, i, j)
            {
                printf("  %s  %-20s %-10s eta %s\n", json_string_value(json_object_get(j, "id")),
                       json_string_value(json_object_get(j, "type")),
                       json_string_value(json_object_get(j, "state")),
                       json_is_string(json_object_get(j, "eta"))
                           ? json_string_value(json_object_get(j, "eta"))
                           : "-");
            }
        }
        json_decref(out);
        app_close(ap);
        return CLI_EXIT_OK;
    }
    rc = broadcast_and_print(a, ap, a->positional[0], NULL);
    app_close(ap);
    return rc;
}

/* ---- control -------------------------------------------------------------------------------- */

/* `control rate-limit TYPE RATE`: the limit is stored in the broker, where every daemon obeys it
 * from its next exchange on; then the daemons are asked what they now obey. RATE "none" (or
 * "off", "0") removes the limit. */
static int control_rate_limit(cli_args *a)
{
    app *ap = NULL;
    bp_error err = {0};
    const char *type, *rate;
    int rc;
    if (a->n_positional != 3) {
        return cli_fail(a, BP_E_INVAL,
                        "usage: betpipe control rate-limit TYPE RATE (RATE: N/s, N/m, N/h, N/d, "
                        "or none)");
    }
    type = a->positional[1];
    rate = a->positional[2];
    if (strcmp(rate, "none") == 0 || strcmp(rate, "off") == 0 || strcmp(rate, "0") == 0) {
        rate = NULL;
    } else {
        int64_t count, period;
        if (broker_rate_parse(rate, &count, &period, &err) != BP_OK) {
            return cli_fail(a, BP_E_INVAL, err.msg);
        }
    }
    if ((rc = cli_open_app(a, APP_BROKER, &ap)) != 0) {
        return rc;
    }
    if (ap->broker->ops->set_rate_limit(ap->broker, type, rate, &err) != BP_OK) {
        rc = cli_fail(a, err.code, err.msg);
        app_close(ap);
        return rc;
    }
    if (!a->json) {
        printf("rate limit of %s: %s (stored in the %s broker: every daemon obeys it now)\n", type,
               rate ? rate : "none", ap->broker->ops->name);
    }
    rc = broadcast_and_print(a, ap, "rate_limit", NULL);
    if (rc == CLI_EXIT_NOTFOUND) {
        rc = CLI_EXIT_OK; /* stored all the same: daemons that start later obey it too */
    }
    app_close(ap);
    return rc;
}

static int cmd_control(cli_args *a, int argc, char **argv)
{
    app *ap = NULL;
    json_t *args = NULL;
    const char *cmd;
    char wire[32];
    int rc;
    (void)argc;
    (void)argv;
    if (a->n_positional < 1) {
        return cli_fail(a, BP_E_INVAL,
                        "usage: betpipe control pool-grow QUEUE [N] | pool-shrink QUEUE [N] | "
                        "add-consumer QUEUE [N] | cancel-consumer QUEUE | rate-limit TYPE RATE | "
                        "shutdown");
    }
    cmd = a->positional[0];
    if (strcmp(cmd, "rate-limit") == 0) {
        return control_rate_limit(a);
    }
    if (strcmp(cmd, "shutdown") == 0) {
        args = json_object();
    } else if (strcmp(cmd, "pool-grow") == 0 || strcmp(cmd, "pool-shrink") == 0 ||
               strcmp(cmd, "add-consumer") == 0 || strcmp(cmd, "cancel-consumer") == 0) {
        int64_t n = 1;
        bp_error err = {0};
        if (a->n_positional < 2) {
            return cli_fail(a, BP_E_INVAL,
                            "which queue? (e.g. betpipe control pool-grow "
                            "ml_queue 2)");
        }
        if (a->n_positional >= 3 &&
            util_parse_int64(a->positional[2], 0, 256, "N", &n, &err) != BP_OK) {
            return cli_fail(a, BP_E_INVAL, err.msg);
        }
        args = a->n_positional >= 3 || strcmp(cmd, "add-consumer") != 0
                   ? json_pack("{s:s, s:I}", "queue", a->positional[1], "n", (json_int_t)n)
                   : json_pack("{s:s}", "queue", a->positional[1]);
    } else {
        return cli_fail(a, BP_E_INVAL,
                        "unknown control command (pool-grow, pool-shrink, "
                        "add-consumer, cancel-consumer, rate-limit, shutdown)");
    }
    /* wire names use underscores, like Celery's */
    util_strlcpy(wire, cmd, sizeof wire);
    for (char *p = wire; *p; p++) {
        if (*p == '-') {
            *p = '_';
        }
    }
    if ((rc = cli_open_app(a, APP_STORE, &ap)) != 0) {
        json_decref(args);
        return rc;
    }
    rc = broadcast_and_print(a, ap, wire, args);
    json_decref(args);
    app_close(ap);
    return rc;
}

const cli_command cli_inspect_command = {
    "inspect", "inspect WHAT [--destination W] [--timeout DUR]",
    "ask running daemons: ping, stats, active, reserved, registered, active_queues, conf; "
    "scheduled reads the broker (delayed and retrying jobs wait there, so no --destination)",
    CLI_OPTS(control_opts), cmd_inspect};

const cli_command cli_control_command = {
    "control", "control CMD [ARGS] [--destination W]",
    "change running daemons: pool-grow, pool-shrink, add-consumer, cancel-consumer, rate-limit, "
    "shutdown",
    CLI_OPTS(control_opts), cmd_control};
