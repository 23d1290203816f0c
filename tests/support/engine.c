/*
 * engine.c - integration-test helpers (see engine.h).
 */
#include "engine.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "client.h"
#include "util.h"

void bpt_engine_env_setup(void)
{
    char dirs[8192];
    snprintf(dirs, sizeof dirs, "%s:%s", bpt_env("BP_TEST_PLUGIN_DIR"),
             bpt_env("BP_TEST_ENGINE_PLUGIN_DIR"));
    setenv("BETPIPE_PLUGIN_DIR", dirs, 1);
    /* No schedule files: a test's daemon must not fire the shipped schedule (a backup caught up
     * at start, a cleanup at 01:00) in the middle of what the test counts. Beat tests point
     * this at their own files. */
    setenv("BETPIPE_SCHEDULES", "", 1);
    unsetenv("BETPIPE_CONFIG");
    unsetenv("BETPIPE_BROKER_URL");
    unsetenv("REDIS_URL");
    unsetenv("CELERY_BROKER_URL");
    unsetenv("REDIS_HOST");
    unsetenv("REDIS_PORT");
    unsetenv("REDIS_DB");
    unsetenv("REDIS_PASSWORD");
}

typedef struct ready_ctx {
    const char *log;
    pid_t pid;
    size_t skip; /* bytes of the log that belong to earlier daemons */
} ready_ctx;

static bool daemon_ready(void *ud)
{
    ready_ctx *c = ud;
    char *text = bpt_slurp(c->log);
    char needle[64];
    bool ready;
    int code;
    snprintf(needle, sizeof needle, ":%d:", (int)c->pid);
    ready = text && strlen(text) > c->skip && strstr(text + c->skip, " ready worker=") &&
            strstr(text + c->skip, needle);
    free(text);
    cr_assert(ready || !bpt_exited(c->pid, &code), "daemon exited (code %d) before it was ready",
              code);
    return ready;
}

pid_t bpt_daemon_start(const char *data_dir, ...)
{
    const char *argv[32];
    char log[1024];
    int n = 0;
    va_list ap;
    char *before;
    ready_ctx ctx;
    argv[n++] = "betpipe";
    argv[n++] = "--data-dir";
    argv[n++] = data_dir;
    argv[n++] = "daemon";
    va_start(ap, data_dir);
    for (const char *a = va_arg(ap, const char *); a && n < 30; a = va_arg(ap, const char *)) {
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    snprintf(log, sizeof log, "%s/daemon.log", data_dir);
    before = bpt_slurp(log);
    ctx.log = log;
    ctx.skip = before ? strlen(before) : 0;
    free(before);
    ctx.pid = bpt_spawn(argv, NULL, log);
    cr_assert(bpt_wait_for(daemon_ready, &ctx, 20000), "daemon did not become ready (see %s)", log);
    return ctx.pid;
}

app *bpt_app_open(const char *data_dir)
{
    config_overrides ov = {.data_dir = data_dir};
    app *a = NULL;
    bp_error err = {0};
    cr_assert_eq(app_open(&ov, APP_ALL | APP_QUIET, &a, &err), BP_OK, "app_open: %s", err.msg);
    return a;
}

void bpt_enqueue(app *a, const char *type, const char *args_json, char out_id[BP_JOB_ID_SIZE])
{
    json_t *args = json_loads(args_json ? args_json : "{}", 0, NULL);
    bp_error err = {0};
    cr_assert(args, "bad test args %s", args_json);
    cr_assert_eq(client_enqueue(a, type, args, NULL, NULL, out_id, &err), BP_OK, "enqueue: %s",
                 err.msg);
    json_decref(args);
}

job *bpt_wait_final(app *a, const char *id, int64_t timeout_ms)
{
    job *j = NULL;
    bp_error err = {0};
    int rc = client_wait(a, id, bpt_deadline_ms(timeout_ms), &j, &err);
    if (rc == BP_OK) {
        return j;
    }
    job_free(j);
    return NULL;
}

int bpt_count_lines(const char *file, const char *prefix, const char *id)
{
    char *text = bpt_slurp(file);
    int n = 0;
    char *save = NULL;
    if (!text) {
        return 0;
    }
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, prefix, strlen(prefix)) == 0 && (!id || strstr(line, id))) {
            n++;
        }
    }
    free(text);
    return n;
}
