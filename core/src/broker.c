/*
 * broker.c - choosing a broker backend from a URL, and the options every backend shares.
 */
#include "broker.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

void broker_options_default(broker_options *o)
{
    memset(o, 0, sizeof *o);
    o->lease_ms = 30000;
    o->result_ttl_ms = 86400000;
    o->max_crashes = 3;
    o->worker_timeout_ms = 30000;
}

int broker_open(const char *url, const char *data_dir, const broker_options *opts, broker **out,
                bp_error *err)
{
    *out = NULL;
    if (!url || !*url) {
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s/broker.db", data_dir) >= sizeof path) {
            return bp_err(err, BP_E_INVAL, "data dir path too long: %s", data_dir);
        }
        return broker_sqlite_open(path, data_dir, opts, out, err);
    }
    if (util_str_starts_with(url, "sqlite://")) {
        const char *path = url + strlen("sqlite://");
        if (*path != '/') {
            return bp_err(err, BP_E_CONFIG, "broker URL '%s': expected sqlite:///absolute/path.db",
                          url);
        }
        return broker_sqlite_open(path, data_dir, opts, out, err);
    }
    if (util_str_starts_with(url, "redis://") || util_str_starts_with(url, "rediss://") ||
        util_str_starts_with(url, "unix://")) {
        return broker_redis_open(url, opts, out, err);
    }
    if (url[0] == '/') {
        return broker_sqlite_open(url, data_dir, opts, out, err);
    }
    return bp_err(err, BP_E_CONFIG,
                  "broker URL '%s' is not understood: use sqlite:///path/broker.db, "
                  "redis://[user:pass@]host:port/db or unix:///path/redis.sock",
                  url);
}

bool broker_url_is_redis(const char *url)
{
    return url && (util_str_starts_with(url, "redis://") ||
                   util_str_starts_with(url, "rediss://") || util_str_starts_with(url, "unix://"));
}

int broker_rate_parse(const char *rate, int64_t *out_count, int64_t *out_period_ms, bp_error *err)
{
    const char *slash = rate ? strchr(rate, '/') : NULL;
    char num[24];
    int64_t n = 0;
    size_t len;
    if (!slash || slash == rate || (size_t)(slash - rate) >= sizeof num) {
        return bp_err(err, BP_E_INVAL,
                      "rate limit '%s' is not N/s, N/m, N/h or N/d (e.g. \"10/m\")",
                      rate ? rate : "");
    }
    len = (size_t)(slash - rate);
    memcpy(num, rate, len);
    num[len] = '\0';
    if (util_parse_int64(num, 1, 1000000000, "rate limit", &n, NULL) != BP_OK ||
        strlen(slash + 1) != 1) {
        return bp_err(err, BP_E_INVAL,
                      "rate limit '%s' is not N/s, N/m, N/h or N/d with N a positive integer "
                      "(e.g. \"10/m\")",
                      rate);
    }
    switch (slash[1]) {
    case 's': *out_period_ms = 1000; break;
    case 'm': *out_period_ms = 60 * 1000; break;
    case 'h': *out_period_ms = 3600 * 1000; break;
    case 'd': *out_period_ms = 86400 * 1000; break;
    default:
        return bp_err(err, BP_E_INVAL,
                      "rate limit '%s': the period is s, m, h or d (per second, minute, hour, "
                      "day)",
                      rate);
    }
    *out_count = n;
    return BP_OK;
}

void broker_rate_schedule(int64_t count, int64_t period_ms, double *out_interval_ms,
                          double *out_tolerance_ms)
{
    /* The generic cell rate algorithm: a token every `interval`; a worker may take one as long
     * as the theoretical arrival time of the next is no more than `tolerance` ahead of now.
     * A burst of 100 ms worth of tokens keeps fast limits (5000/s) from costing one exchange per
     * job, and is at most one token for the slow limits API quotas use (10/m, 1000/h). */
    double interval = (double)period_ms / (double)count;
    int64_t burst = count * 100 / period_ms;
    if (burst < 1) {
        burst = 1;
    }
    *out_interval_ms = interval;
    *out_tolerance_ms = (double)(burst - 1) * interval;
}

/* Split `s` at spaces: the i-th word (pointer and length), or false when there is none. */
static bool word_at(const char *s, size_t i, const char **out, size_t *out_len)
{
    size_t k = 0;
    if (!s) {
        return false;
    }
    while (*s) {
        size_t n;
        while (*s == ' ') {
            s++;
        }
        if (!*s) {
            break;
        }
        n = strcspn(s, " ");
        if (k++ == i) {
            *out = s;
            *out_len = n;
            return true;
        }
        s += n;
    }
    return false;
}

void broker_event_expand(json_t *out, int64_t ts, const char *kind, const char *queue,
                         const char *worker, const char *ids, const char *types, const char *error,
                         const char *data)
{
    char iso[40];
    if (!kind || !*kind) {
        return;
    }
    util_format_iso8601(ts, iso, sizeof iso);
    if (util_str_starts_with(kind, "worker-")) {
        json_t *o = json_pack("{s:I, s:s, s:s, s:s?}", "ts", (json_int_t)ts, "time", iso, "event",
                              kind, "worker", worker && *worker ? worker : NULL);
        json_t *extra = data && *data ? json_loads(data, 0, NULL) : NULL;
        if (o && json_is_object(extra)) {
            json_object_update_missing(o, extra);
        }
        json_decref(extra);
        if (o) {
            json_array_append_new(out, o);
        }
        return;
    }
    for (size_t i = 0;; i++) {
        const char *id, *ty = NULL;
        size_t id_len, ty_len = 0;
        json_t *o;
        if (!word_at(ids, i, &id, &id_len)) {
            break;
        }
        word_at(types, i, &ty, &ty_len);
        o = json_pack("{s:I, s:s, s:s, s:s%}", "ts", (json_int_t)ts, "time", iso, "event", kind,
                      "id", id, id_len);
        if (!o) {
            continue;
        }
        if (ty && ty_len > 0) {
            json_object_set_new(o, "type", json_stringn(ty, ty_len));
        }
        if (queue && *queue) {
            json_object_set_new(o, "queue", json_string(queue));
        }
        if (worker && *worker) {
            json_object_set_new(o, "worker", json_string(worker));
        }
        if (error && *error) {
            json_object_set_new(o, "error", json_string(error));
        }
        json_array_append_new(out, o);
    }
}

char *broker_worker_event_data(const broker_worker_info *w, const json_t *stats)
{
    static const char *const keys[] = {"processed", "failed", "busy", "load1", "rss_kb"};
    json_t *o = json_pack("{s:s, s:i, s:O?}", "host", w->host ? w->host : "", "pid", w->pid,
                          "queues", w->queues);
    char *text;
    for (size_t i = 0; o && i < BP_ARRAY_LEN(keys); i++) {
        json_t *v = json_object_get(stats, keys[i]);
        if (v) {
            json_object_set(o, keys[i], v);
        }
    }
    text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}
