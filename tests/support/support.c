/*
 * support.c - test helpers (see support.h).
 */
/* nftw() is an XSI function. */
#define _XOPEN_SOURCE 700
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <ftw.h>

extern char **environ;

const char *bpt_env(const char *name)
{
    const char *v = getenv(name);
    cr_assert(v != NULL && *v, "environment variable %s is not set (run the test through ctest)",
              name);
    return v;
}

char *bpt_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path = NULL;
    size_t len;
    if (!base || !*base) {
        base = "/tmp";
    }
    len = strlen(base) + strlen(tag) + 32;
    path = malloc(len);
    cr_assert(path);
    snprintf(path, len, "%s/bpt-%s-XXXXXX", base, tag);
    cr_assert(mkdtemp(path) != NULL, "mkdtemp %s failed (errno %d)", path, errno);
    return path;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void bpt_rm_rf(const char *path)
{
    if (path && *path && getenv("BP_TEST_KEEP") == NULL) {
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

int64_t bpt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t bpt_deadline_ms(int64_t base_ms)
{
    const char *m = getenv("BP_TEST_TIMEOUT_MULTIPLIER");
    double mult = m ? strtod(m, NULL) : 1.0;
    if (!(mult >= 1.0)) {
        mult = 1.0;
    }
    return (int64_t)((double)base_ms * mult);
}

bool bpt_wait_for(bool (*cond)(void *ud), void *ud, int64_t timeout_ms)
{
    int64_t end = bpt_now_ms() + bpt_deadline_ms(timeout_ms);
    for (;;) {
        if (cond(ud)) {
            return true;
        }
        if (bpt_now_ms() > end) {
            return false;
        }
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

void bpt_die_with_parent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        _exit(1);
    }
}

static const char *map_bin(const char *argv0)
{
    return strcmp(argv0, "betpipe") == 0 ? bpt_env("BP_TEST_BIN") : argv0;
}

static char **build_env(const char *const *extra)
{
    size_t n = 0, k = 0;
    char **env;
    for (char **e = environ; *e; e++) {
        n++;
    }
    for (const char *const *e = extra; e && *e; e++) {
        k++;
    }
    env = calloc(n + k + 1, sizeof *env);
    cr_assert(env);
    size_t i = 0;
    for (char **e = environ; *e; e++) {
        /* an extra entry with the same name overrides the inherited one */
        bool overridden = false;
        const char *eq = strchr(*e, '=');
        size_t nl = eq ? (size_t)(eq - *e) : strlen(*e);
        for (const char *const *x = extra; x && *x; x++) {
            if (strncmp(*x, *e, nl) == 0 && (*x)[nl] == '=') {
                overridden = true;
            }
        }
        if (!overridden) {
            env[i++] = *e;
        }
    }
    for (const char *const *x = extra; x && *x; x++) {
        env[i++] = (char *)(uintptr_t)*x;
    }
    env[i] = NULL;
    return env;
}

typedef struct growbuf {
    char *data;
    size_t len, cap;
} growbuf;

static void gb_append(growbuf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        b->data = realloc(b->data, cap);
        cr_assert(b->data);
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static int decode_status(int status)
{
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return -1;
}

bpt_result bpt_run(const char *const *argv, const char *const *env, const char *stdin_text,
                   int64_t timeout_ms)
{
    int out_p[2], err_p[2], in_p[2];
    bpt_result r = {.exit_code = -1};
    growbuf out = {0}, err = {0};
    pid_t pid, parent = getpid();
    int64_t end = bpt_now_ms() + bpt_deadline_ms(timeout_ms);
    char **envp = build_env(env);

    cr_assert(pipe(out_p) == 0 && pipe(err_p) == 0 && pipe(in_p) == 0);
    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        bpt_die_with_parent(parent);
        dup2(in_p[0], 0);
        dup2(out_p[1], 1);
        dup2(err_p[1], 2);
        close(in_p[1]);
        close(out_p[0]);
        close(err_p[0]);
        execve(map_bin(argv[0]), (char *const *)(uintptr_t)argv, envp);
        fprintf(stderr, "exec %s failed (errno %d)\n", argv[0], errno);
        _exit(127);
    }
    free(envp);
    close(in_p[0]);
    close(out_p[1]);
    close(err_p[1]);
    if (stdin_text) {
        size_t left = strlen(stdin_text);
        const char *p = stdin_text;
        while (left > 0) {
            ssize_t n = write(in_p[1], p, left);
            if (n <= 0) {
                break;
            }
            p += n;
            left -= (size_t)n;
        }
    }
    close(in_p[1]);
    gb_append(&out, "", 0);
    gb_append(&err, "", 0);
    bool out_open = true, err_open = true;
    while (out_open || err_open) {
        struct pollfd fds[2] = {{out_p[0], POLLIN, 0}, {err_p[0], POLLIN, 0}};
        int64_t left = end - bpt_now_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            break;
        }
        int n = poll(fds, 2, (int)(left > 1000 ? 1000 : left));
        if (n < 0 && errno != EINTR) {
            break;
        }
        char buf[8192];
        for (int i = 0; i < 2; i++) {
            if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t k = read(fds[i].fd, buf, sizeof buf);
                if (k <= 0) {
                    if (i == 0) {
                        out_open = false;
                    } else {
                        err_open = false;
                    }
                    fds[i].fd = -1;
                } else {
                    gb_append(i == 0 ? &out : &err, buf, (size_t)k);
                }
            }
        }
        if (!out_open) {
            fds[0].fd = -1;
        }
    }
    close(out_p[0]);
    close(err_p[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    r.exit_code = decode_status(status);
    r.out = out.data;
    r.err = err.data;
    return r;
}

bpt_result bpt_betpipe(const char *data_dir, ...)
{
    const char *argv[64];
    int n = 0;
    va_list ap;
    argv[n++] = "betpipe";
    argv[n++] = "--data-dir";
    argv[n++] = data_dir;
    va_start(ap, data_dir);
    for (const char *a = va_arg(ap, const char *); a && n < 62; a = va_arg(ap, const char *)) {
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    return bpt_run(argv, NULL, NULL, 60000);
}

void bpt_result_free(bpt_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

pid_t bpt_spawn(const char *const *argv, const char *const *env, const char *log_path)
{
    char **envp = build_env(env);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        bpt_die_with_parent(parent);
        int fd = open(log_path ? log_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        int devnull = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (devnull >= 0) {
            dup2(devnull, 0);
        }
        setpgid(0, 0);
        /* Start as a service manager would, without the test runner's descriptors: what the
         * daemon hands on to its own children is then its own doing (a test checks that). */
        for (int other = 3; other < 1024; other++) {
            close(other);
        }
        execve(map_bin(argv[0]), (char *const *)(uintptr_t)argv, envp);
        _exit(127);
    }
    free(envp);
    return pid;
}

bool bpt_exited(pid_t pid, int *out_code)
{
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
        if (out_code) {
            *out_code = decode_status(status);
        }
        return true;
    }
    if (r < 0 && errno == ECHILD) {
        if (out_code) {
            *out_code = -1;
        }
        return true;
    }
    return false;
}

int bpt_stop(pid_t pid, int sig, int64_t timeout_ms)
{
    int code = -1;
    int64_t end = bpt_now_ms() + bpt_deadline_ms(timeout_ms);
    kill(pid, sig);
    while (bpt_now_ms() < end) {
        if (bpt_exited(pid, &code)) {
            return code;
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    return decode_status(status);
}

char *bpt_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    growbuf b = {0};
    char buf[8192];
    size_t n;
    if (!f) {
        return NULL;
    }
    gb_append(&b, "", 0);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        gb_append(&b, buf, n);
    }
    fclose(f);
    return b.data;
}

int bpt_count_in_file(const char *path, const char *needle)
{
    char *text = bpt_slurp(path);
    int n = 0;
    for (const char *p = text ? text : ""; (p = strstr(p, needle)) != NULL; p += strlen(needle)) {
        n++;
    }
    free(text);
    return n;
}

bool bpt_file_contains(void *ud)
{
    bpt_file_has *f = ud;
    char *text = bpt_slurp(f->path);
    bool yes = text && strstr(text, f->needle);
    free(text);
    return yes;
}

void bpt_write_in(const char *dir, const char *name, const char *text)
{
    char path[1200];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0, "cannot write %s", path);
}
