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
