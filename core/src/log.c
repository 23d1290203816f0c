/*
 * log.c - the core's line logger.
 */
#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "util.h"

static atomic_int log_level = BP_LOG_INFO;
static atomic_int log_fd = 2;
static atomic_int log_json;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

void log_set_level(int level)
{
    atomic_store(&log_level, level);
}

int log_get_level(void)
{
    return atomic_load(&log_level);
}

void log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

void log_set_json(int on)
{
    atomic_store(&log_json, on);
}

const char *log_level_name(int level)
{
    if (level < 0 || level > BP_LOG_TRACE) {
        return "?";
    }
    return level_names[level];
}

int log_level_parse(const char *name, int *out_level)
{
    static const char *const lower[] = {"error", "warn", "info", "debug", "trace"};
    for (int i = 0; i < (int)BP_ARRAY_LEN(lower); i++) {
        if (strcmp(name, lower[i]) == 0 || strcmp(name, level_names[i]) == 0) {
            *out_level = i;
            return BP_OK;
        }
    }
    if (strcmp(name, "warning") == 0) {
        *out_level = BP_LOG_WARN;
        return BP_OK;
    }
    return BP_E_INVAL;
}

void log_vwrite(int level, const char *component, const char *fmt, va_list ap)
{
    char line[4096];
    char ts[40];
    char msg[3800];
    int n;
    if (level > atomic_load(&log_level)) {
        return;
    }
    util_format_iso8601(util_now_ms(), ts, sizeof ts);
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (atomic_load(&log_json)) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "ts", ts, "level", log_level_name(level),
                              "component", component, "msg", msg);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        n = snprintf(line, sizeof line, "%s\n", s ? s : msg);
        free(s);
        json_decref(o);
    } else {
        n = snprintf(line, sizeof line, "%s %s %s %s\n", ts, log_level_name(level), component, msg);
    }
    if (n < 0) {
        return;
    }
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    /* One write per line: lines from different threads never interleave. */
    if (write(atomic_load(&log_fd), line, (size_t)n) < 0) {
        /* Nowhere left to report a logging failure. */
    }
}

void log_write(int level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, component, fmt, ap);
    va_end(ap);
}
