/*
 * cli_monitor.c - `betpipe monitor`: tail the broker's event log live, one line per event.
 *
 * The events are written by the broker in the same atomic step as the state changes they
 * describe (a Redis stream per queue, or the embedded broker's events table), so what monitor
 * prints is what happened, in order, and it works the same against either broker. Reading
 * blocks on the broker (XREAD BLOCK, or an `e-` wake socket): an idle monitor costs nothing.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cli.h"
#include "cli_util.h"
#include "util.h"

#define MONITOR_SLICE_MS 1000 /* a read never blocks longer: SIGINT and new queues are noticed */

static const cli_opt monitor_opts[] = {
    {"seconds", true, "N        stop after N seconds (default: until interrupted)"},
};

static volatile sig_atomic_t monitor_stop;

static void on_signal(int sig)
{
    (void)sig;
    monitor_stop = 1;
}

/* One human line: time, event, then what the event knows. */
static void print_event(const json_t *e)
{
    const char *time = json_string_value(json_object_get(e, "time"));
    const char *kind = json_string_value(json_object_get(e, "event"));
    const char *keys[] = {"id", "type", "queue", "worker", "error"};
    printf("%s  %-16s", time ? time : "-", kind ? kind : "?");
    if (kind && util_str_starts_with(kind, "worker-")) {
        json_t *rss = json_object_get(e, "rss_kb");
        printf(" %s", json_string_value(json_object_get(e, "worker")));
        if (json_is_string(json_object_get(e, "host"))) {
            printf("  host=%s pid=%lld", json_string_value(json_object_get(e, "host")),
                   (long long)json_integer_value(json_object_get(e, "pid")));
        }
        if (json_is_integer(json_object_get(e, "processed"))) {
            printf(" processed=%lld failed=%lld busy=%lld load=%.2f",
                   (long long)json_integer_value(json_object_get(e, "processed")),
                   (long long)json_integer_value(json_object_get(e, "failed")),
                   (long long)json_integer_value(json_object_get(e, "busy")),
                   json_number_value(json_object_get(e, "load1")));
        }
        if (json_is_integer(rss)) {
            printf(" rss=%.1fMiB", (double)json_integer_value(rss) / 1024.0);
        }
        if (json_is_string(json_object_get(e, "reason"))) {
            printf(" (%s)", json_string_value(json_object_get(e, "reason")));
        }
        printf("\n");
        return;
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = json_string_value(json_object_get(e, keys[i]));
        if (!v) {
            continue;
        }
        if (i < 2) {
            printf(" %s", v);
        } else {
            printf(" %s=%s", keys[i], v);
        }
    }
    printf("\n");
}

static void print_events(const cli_args *a, const json_t *events)
{
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        if (a->json) {
            /* JSON Lines: one compact object per event, so a pipe can read it live */
            char *s = json_dumps(e, JSON_COMPACT);
            if (s) {
                printf("%s\n", s);
                free(s);
            }
        } else {
            print_event(e);
        }
    }
    fflush(stdout);
}

static int cmd_monitor(cli_args *a, int argc, char **argv)
{
    app *ap = NULL;
    json_t *cursor = json_object();
    bp_error err = {0};
    const char *v = cli_opt_value(a, "seconds");
    int64_t run_ms = -1, end;
    int rc = CLI_EXIT_OK;
    struct sigaction sa = {.sa_handler = on_signal};
    (void)argc;
    (void)argv;
    if (a->n_positional) {
        json_decref(cursor);
        return cli_fail(a, BP_E_INVAL, "usage: betpipe monitor [--seconds N] [--json]");
    }
    if (v) {
        double secs;
        if (util_parse_double(v, "--seconds", &secs, &err) != BP_OK || secs < 0) {
            json_decref(cursor);
            return cli_fail(a, BP_E_INVAL,
                            err.msg[0] ? err.msg : "--seconds must be a number of seconds >= 0");
        }
        run_ms = (int64_t)(secs * 1000.0);
    }
    if ((rc = cli_open_app(a, APP_BROKER, &ap)) != 0) {
        json_decref(cursor);
        return rc;
    }
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    end = run_ms >= 0 ? util_now_ms() + run_ms : INT64_MAX;
    /* The first read places the cursor at "now"; from then on nothing is missed, which the line
     * on stderr tells whoever waits for the monitor to be ready (scripts, tests). */
    {
        json_t *none = NULL;
        if (ap->broker->ops->events(ap->broker, cursor, 0, &none, &err) != BP_OK) {
            rc = cli_fail(a, err.code, err.msg);
            json_decref(cursor);
            app_close(ap);
            return rc;
        }
        print_events(a, none);
        json_decref(none);
    }
    fprintf(stderr, "betpipe monitor: watching the events of the %s broker (Ctrl-C to stop)\n",
            ap->broker->ops->name);
    while (!monitor_stop) {
        json_t *events = NULL;
        int64_t left = end - util_now_ms();
        if (left <= 0) {
            break;
        }
        if (ap->broker->ops->events(ap->broker, cursor,
                                    left < MONITOR_SLICE_MS ? left : MONITOR_SLICE_MS, &events,
                                    &err) != BP_OK) {
            if (monitor_stop) {
                break;
            }
            rc = cli_fail(a, err.code, err.msg);
            break;
        }
        print_events(a, events);
        json_decref(events);
    }
    json_decref(cursor);
    app_close(ap);
    return rc;
}

const cli_command cli_monitor_command = {
    "monitor", "monitor [--seconds N] [--json]",
    "tail the broker's events live: jobs sent, received, started, succeeded, failed, retried, "
    "revoked, expired; workers online, heartbeat, offline (--json: one object per line)",
    CLI_OPTS(monitor_opts), cmd_monitor};
