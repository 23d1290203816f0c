/*
 * isolate.c - running a job in a process of its own (see isolate.h).
 */
/* pipe2() (atomic O_CLOEXEC) is a GNU/Linux call. */
#define _GNU_SOURCE
#include "isolate.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec.h"
#include "log.h"
#include "util.h"

extern char **environ;

/* ============================================================================================
 * Configuration
 * ========================================================================================== */

static int64_t config_duration_ms(const json_t *v)
{
    int64_t ms = 0;
    if (json_is_number(v)) {
        return (int64_t)(json_number_value(v) * 1000.0);
    }
    if (json_is_string(v) && util_parse_duration_ms(json_string_value(v), &ms, NULL) == BP_OK) {
        return ms;
    }
    return 0;
}

/* "512M", "2G", "1048576" -> bytes; 0 when absent or not understood (config validation names
 * a bad value before the daemon starts). */
static int64_t config_bytes(const json_t *v)
{
    char *end = NULL;
    double n;
    if (json_is_integer(v)) {
        return json_integer_value(v);
    }
    if (!json_is_string(v)) {
        return 0;
    }
    n = strtod(json_string_value(v), &end);
    switch (end && *end ? *end : ' ') {
    case 'k':
    case 'K': n *= 1024.0; break;
    case 'm':
    case 'M': n *= 1024.0 * 1024.0; break;
    case 'g':
    case 'G': n *= 1024.0 * 1024.0 * 1024.0; break;
    default: break;
    }
    return n > 0 ? (int64_t)n : 0;
}

bool isolate_wanted(const app *a, const job *j, int type_flags)
{
    const json_t *per_type = config_job(a->cfg, j->type);
    const json_t *v = json_object_get(per_type, "isolate");
    const char *mode;
    if (json_is_boolean(v)) {
        return json_is_true(v);
    }
    mode = json_string_value(json_object_get(config_section(a->cfg, "daemon"), "isolation"));
    if (mode && strcmp(mode, "all") == 0) {
        return true;
    }
    if (mode && strcmp(mode, "none") == 0) {
        return false;
    }
    return (type_flags & BP_JOB_F_ISOLATE) != 0;
}

/* ============================================================================================
 * Parent side
 * ========================================================================================== */

static void set_outcome(pool_outcome *out, job_state state, const char *fmt, ...) BP_PRINTF(3, 4);

static void set_outcome(pool_outcome *out, job_state state, const char *fmt, ...)
{
    char buf[BP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(out->error);
    out->state = state;
    out->error = strdup(buf);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGABRT: return "SIGABRT";
    case SIGKILL: return "SIGKILL";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGTERM: return "SIGTERM";
    default: return "a signal";
    }
}

/* One line from the child: a progress report or the outcome. */
static void child_line(pool *p, pool_task *t, const char *line, pool_outcome *got, bool *have)
{
    json_t *o = json_loads(line, 0, NULL);
    const json_t *oc;
    if (!o) {
        return;
    }
    if (json_is_number(json_object_get(o, "progress"))) {
        if (p) {
            pool_task_progress(p, t, json_number_value(json_object_get(o, "progress")),
                               json_string_value(json_object_get(o, "msg")));
        }
    } else if ((oc = json_object_get(o, "outcome")) != NULL) {
        const char *st = json_string_value(json_object_get(oc, "state"));
        job_state s;
        if (st && job_state_parse(st, &s) == BP_OK) {
            got->state = s;
            got->result = util_strdup(json_string_value(json_object_get(oc, "result")));
            got->error = util_strdup(json_string_value(json_object_get(oc, "error")));
            got->retry_at_ms = json_integer_value(json_object_get(oc, "retry_at_ms"));
            *have = true;
        }
    }
    json_decref(o);
}

void isolate_run(app *a, pool *p, pool_task *t, pool_outcome *out)
{
    const job *j = t->job;
    const json_t *per_type = config_job(a->cfg, j->type);
    int64_t hard_ms = config_duration_ms(json_object_get(per_type, "time_limit"));
    int64_t max_memory = config_bytes(json_object_get(per_type, "max_memory"));
    char exe[PATH_MAX], mem[32], level[16];
    const char *argv[24];
    int n = 0, in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, status = 0;
    posix_spawn_file_actions_t fa;
    pid_t pid = -1;
    json_t *record;
    char *text = NULL, *buf = NULL;
    size_t len = 0, cap = 0;
    bool have = false, sent_usr1 = false, sent_usr2 = false;
    const char *killed_for = NULL;
    pool_outcome got = {0};
    int64_t started = util_mono_ns();

    memset(out, 0, sizeof *out);
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (el <= 0) {
        set_outcome(out, JOB_FAILURE, "isolation: cannot find the betpipe executable");
        return;
    }
    exe[el] = '\0';
    util_strlcpy(level, log_level_name(log_get_level()), sizeof level);
    for (char *c = level; *c; c++) {
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    }
    argv[n++] = exe;
    argv[n++] = "--data-dir";
    argv[n++] = a->cfg->data_dir;
    if (a->cfg->path) {
        argv[n++] = "--config";
        argv[n++] = a->cfg->path;
    }
    if (a->cfg->broker_url && *a->cfg->broker_url) {
        argv[n++] = "--broker";
        argv[n++] = a->cfg->broker_url;
    }
    argv[n++] = "--plugin-dir";
    argv[n++] = a->cfg->plugin_dir;
    argv[n++] = "--log-level";
    argv[n++] = level;
    argv[n++] = "__exec-job";
    if (max_memory > 0) {
        snprintf(mem, sizeof mem, "%lld", (long long)max_memory);
        argv[n++] = "--max-memory";
        argv[n++] = mem;
    }
    argv[n] = NULL;

    record = job_to_json(j);
    text = record ? json_dumps(record, JSON_COMPACT) : NULL;
    json_decref(record);
    /* Close-on-exec from birth: two workers spawn children at once, and a child that inherited
     * the other's pipe ends would hold them open - each child then waits for an end of input
     * that the other prevents (a deadlock seen with two ml.train runs side by side). The
     * child's own ends become its stdin and stdout through dup2, which clears the flag. */
    if (!text || pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0) {
        set_outcome(out, JOB_FAILURE, "isolation: cannot set up the child process");
        goto cleanup;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
    posix_spawn_file_actions_addclose(&fa, in_pipe[1]);
    posix_spawn_file_actions_addclose(&fa, out_pipe[0]);
    int sp = posix_spawn(&pid, exe, &fa, NULL, (char *const *)(uintptr_t)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in_pipe[0]);
    close(out_pipe[1]);
    in_pipe[0] = out_pipe[1] = -1;
    if (sp != 0) {
        set_outcome(out, JOB_FAILURE, "isolation: cannot start %s (errno %d)", exe, sp);
        goto cleanup;
    }
    log_debug("isolate", "job running in its own process id=%s pid=%d", j->id, (int)pid);
    {
        /* The record is small; a child that dies before reading it gets EPIPE, ignored. */
        size_t tl = strlen(text), off = 0;
        struct sigaction ign = {.sa_handler = SIG_IGN}, old;
        sigaction(SIGPIPE, &ign, &old);
        while (off < tl) {
            ssize_t w = write(in_pipe[1], text + off, tl - off);
            if (w <= 0 && errno != EINTR) {
                break;
            }
            off += w > 0 ? (size_t)w : 0;
        }
        sigaction(SIGPIPE, &old, NULL);
        close(in_pipe[1]);
        in_pipe[1] = -1;
    }

    for (;;) {
        struct pollfd pfd = {out_pipe[0], POLLIN, 0};
        int cancel = atomic_load(&t->cancel);
        if (!killed_for) {
            if (cancel == POOL_CANCEL_TERMINATE) {
                kill(pid, SIGKILL);
                killed_for = "terminated";
            } else if (hard_ms > 0 && (util_mono_ns() - started) / 1000000 >= hard_ms) {
                kill(pid, SIGKILL);
                killed_for = "hard time limit";
            } else if (cancel == POOL_CANCEL_REVOKED && !sent_usr1) {
                kill(pid, SIGUSR1);
                sent_usr1 = true;
            } else if (cancel == POOL_CANCEL_SHUTDOWN && !sent_usr2) {
                kill(pid, SIGUSR2);
                sent_usr2 = true;
            }
        }
        if (poll(&pfd, 1, 50) <= 0) {
            continue;
        }
        if (len + 4096 > cap) {
            size_t ncap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                break;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(out_pipe[0], buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break; /* EOF: the child closed its stdout (exited) */
        }
        len += (size_t)r;
        buf[len] = '\0';
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            child_line(p, t, line, &got, &have);
            line = nl + 1;
        }
        len = strlen(line);
        memmove(buf, line, len + 1);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }

    if (killed_for && strcmp(killed_for, "terminated") == 0) {
        set_outcome(out, JOB_REVOKED, "terminated: its process was killed on request");
    } else if (killed_for) {
        set_outcome(out, JOB_FAILURE, "hard time limit exceeded (%.1f s): its process was killed",
                    (double)hard_ms / 1000.0);
    } else if (have && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        *out = got;
        memset(&got, 0, sizeof got);
    } else if (WIFSIGNALED(status)) {
        set_outcome(out, JOB_FAILURE, "the job's process died of %s (signal %d)%s",
                    signal_name(WTERMSIG(status)), WTERMSIG(status),
                    max_memory > 0 ? " - it may have run out of its max_memory" : "");
    } else {
        set_outcome(out, JOB_FAILURE, "the job's process exited with status %d before reporting",
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    if (out->state == JOB_FAILURE) {
        log_warn("isolate", "isolated job failed id=%s type=%s error=%s", j->id, j->type,
                 out->error ? out->error : "");
    }

cleanup:
    free(got.result);
    free(got.error);
    free(buf);
    free(text);
    for (int i = 0; i < 2; i++) {
        if (in_pipe[i] >= 0) {
            close(in_pipe[i]);
        }
        if (out_pipe[i] >= 0) {
            close(out_pipe[i]);
        }
    }
}

/* ============================================================================================
 * Child side
 * ========================================================================================== */

static pool_task *child_task;

/* Async-signal-safe: one atomic store. */
static void on_cancel_signal(int sig)
{
    if (child_task) {
        atomic_store(&child_task->cancel,
                     sig == SIGUSR2 ? POOL_CANCEL_SHUTDOWN : POOL_CANCEL_REVOKED);
    }
}

static char *read_stdin(void)
{
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        ssize_t r;
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        r = read(0, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        len += (size_t)r;
    }
    if (buf) {
        buf[len] = '\0';
    }
    return buf;
}

int isolate_child_main(const config_overrides *ov)
{
    /* Die with the daemon: after a kill -9 of the daemon its jobs are run again elsewhere, and
     * an orphaned child still running one would be a second copy. (The signal is tied to the
     * spawning worker thread, which waits for this process before it does anything else.) */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char *text = read_stdin();
    json_t *record = text ? json_loads(text, 0, NULL) : NULL;
    job *j = NULL;
    app *a = NULL;
    bp_error err = {0};
    pool_task task;
    pool_outcome out = {0};
    json_t *line;
    char *line_text;
    struct sigaction sa = {.sa_handler = on_cancel_signal};

    free(text);
    if (!record || job_from_json(record, &j, &err) != BP_OK) {
        fprintf(stderr, "betpipe __exec-job: no valid job record on stdin: %s\n", err.msg);
        json_decref(record);
        return 2;
    }
    json_decref(record);
    if (app_open(ov, APP_ALL, &a, &err) != BP_OK) {
        fprintf(stderr, "betpipe __exec-job: %s\n", err.msg);
        job_free(j);
        return 4;
    }
    memset(&task, 0, sizeof task);
    task.job = j;
    task.progress = -1;
    atomic_init(&task.cancel, POOL_CANCEL_NONE);
    task.soft_deadline_ms = j->soft_time_limit_ms > 0 ? j->started_ms + j->soft_time_limit_ms : 0;
    child_task = &task;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);

    exec_run_child(a, &task, &out, 1);

    line = json_pack("{s:{s:s, s:s?, s:s?, s:I}}", "outcome", "state", job_state_name(out.state),
                     "result", out.result, "error", out.error, "retry_at_ms",
                     (json_int_t)out.retry_at_ms);
    line_text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    if (line_text) {
        printf("%s\n", line_text);
        fflush(stdout);
    }
    free(line_text);
    json_decref(line);
    free(out.result);
    free(out.error);
    child_task = NULL;
    job_free(j);
    app_close(a);
    return 0;
}

/* Apply an address-space cap before anything else is allocated (called by the CLI). */
int isolate_limit_memory(int64_t bytes)
{
    struct rlimit rl = {(rlim_t)bytes, (rlim_t)bytes};
    return setrlimit(RLIMIT_AS, &rl) == 0 ? BP_OK : BP_E_IO;
}
