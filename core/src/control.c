/*
 * control.c - the daemon's control socket and the client that broadcasts to it (control.h).
 */
/* pipe2() (atomic O_CLOEXEC) is a GNU/Linux call. */
#define _GNU_SOURCE
#include "control.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define CONTROL_MAX_LINE      (1024 * 1024)
#define CONTROL_IO_TIMEOUT_MS 2000

struct control_server {
    int fd;
    int stop_pipe[2];
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char *worker_id;
    control_handler_fn fn;
    void *ud;
    pthread_t thread;
};

/* Read one '\n'-terminated line within timeout_ms. New string without the newline. */
static char *read_line(int fd, int64_t timeout_ms)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    int64_t end = util_now_ms() + timeout_ms;
    if (!buf) {
        return NULL;
    }
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int64_t left = end - util_now_ms();
        ssize_t n;
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            free(buf);
            return NULL;
        }
        if (len + 4096 > cap) {
            char *nb;
            if (cap >= CONTROL_MAX_LINE) {
                free(buf);
                return NULL;
            }
            nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            free(buf);
            return NULL;
        }
        len += (size_t)n;
        buf[len] = '\0';
        char *nl = memchr(buf, '\n', len);
        if (nl) {
            *nl = '\0';
            return buf;
        }
    }
}

static bool write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        data += n;
        len -= (size_t)n;
    }
    return true;
}

bool control_destined_for(const char *destination, const char *worker_id)
{
    const char *p = destination;
    size_t n = strlen(worker_id);
    if (!destination || !*destination) {
        return true;
    }
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, worker_id, n) == 0) {
            return true;
        }
        if (!comma) {
            break;
        }
        p = comma + 1;
    }
    return false;
}

static void serve_one(control_server *s, int conn)
{
    char *line = read_line(conn, CONTROL_IO_TIMEOUT_MS);
    json_t *req, *reply = NULL;
    json_error_t jerr;
    bp_error err = {0};
    char *text;
    if (!line) {
        return;
    }
    req = json_loads(line, 0, &jerr);
    free(line);
    if (!json_is_object(req) || !json_is_string(json_object_get(req, "cmd"))) {
        reply = json_pack("{s:s, s:b, s:s}", "worker", s->worker_id, "ok", 0, "error",
                          "request must be a JSON object with a string \"cmd\"");
    } else if (!control_destined_for(json_string_value(json_object_get(req, "destination")),
                                     s->worker_id)) {
        reply = json_pack("{s:s, s:b}", "worker", s->worker_id, "skipped", 1);
    } else {
        json_t *r = s->fn(s->ud, json_string_value(json_object_get(req, "cmd")),
                          json_object_get(req, "args"), &err);
        reply = r ? json_pack("{s:s, s:b, s:o}", "worker", s->worker_id, "ok", 1, "reply", r)
                  : json_pack("{s:s, s:b, s:s}", "worker", s->worker_id, "ok", 0, "error",
                              err.msg[0] ? err.msg : "failed");
    }
    json_decref(req);
    text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    if (text) {
        size_t len = strlen(text);
        text[len] = '\n';
        write_all(conn, text, len + 1);
    }
    free(text);
    json_decref(reply);
}

static void *server_main(void *arg)
{
    control_server *s = arg;
    for (;;) {
        struct pollfd fds[2] = {{s->fd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
        int conn;
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (fds[1].revents) {
            break;
        }
        conn = accept(s->fd, NULL, NULL);
        if (conn < 0) {
            continue;
        }
        serve_one(s, conn);
        close(conn);
    }
    return NULL;
}

int control_server_start(const char *run_dir, const char *worker_id, control_handler_fn fn,
                         void *ud, control_server **out, bp_error *err)
{
    control_server *s;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int rc;
    *out = NULL;
    rc = util_mkdir_p(run_dir, 0700, err);
    if (rc != BP_OK) {
        return rc;
    }
    s = calloc(1, sizeof *s);
    if (!s || !(s->worker_id = strdup(worker_id))) {
        free(s);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    s->fn = fn;
    s->ud = ud;
    if ((size_t)snprintf(s->path, sizeof s->path, "%s/c-%d-%08x.sock", run_dir, (int)getpid(),
                         (unsigned)(util_rand64() & 0xffffffffu)) >= sizeof s->path) {
        free(s->worker_id);
        free(s);
        return bp_err(err, BP_E_INVAL, "run directory %s is too long for a unix socket path",
                      run_dir);
    }
    util_strlcpy(sa.sun_path, s->path, sizeof sa.sun_path);
    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0 || pipe2(s->stop_pipe, O_CLOEXEC) != 0) {
        free(s->worker_id);
        free(s);
        return bp_err(err, BP_E_IO, "cannot create the control socket");
    }
    mode_t old = umask(0077);
    rc = bind(s->fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(s->fd, 16) == 0 ? BP_OK
                                                                                       : BP_E_IO;
    umask(old);
    if (rc != BP_OK || pthread_create(&s->thread, NULL, server_main, s) != 0) {
        close(s->fd);
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
        unlink(s->path);
        free(s->worker_id);
        free(s);
        return bp_err(err, BP_E_IO, "cannot listen on control socket in %s", run_dir);
    }
    *out = s;
    return BP_OK;
}

void control_server_stop(control_server *s)
{
    if (!s) {
        return;
    }
    if (write(s->stop_pipe[1], "x", 1) < 0) {
        /* the thread will still see the closed pipe below */
    }
    pthread_join(s->thread, NULL);
    close(s->fd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    unlink(s->path);
    free(s->worker_id);
    free(s);
}

/* Ask one socket; NULL when nobody answers there (stale socket of a dead daemon: removed). */
static json_t *ask(const char *path, const char *request_line, int64_t timeout_ms)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char *line;
    json_t *reply;
    if (fd < 0) {
        return NULL;
    }
    util_strlcpy(sa.sun_path, path, sizeof sa.sun_path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (errno == ECONNREFUSED) {
            unlink(path); /* its daemon is gone */
        }
        close(fd);
        return NULL;
    }
    if (!write_all(fd, request_line, strlen(request_line))) {
        close(fd);
        return NULL;
    }
    line = read_line(fd, timeout_ms);
    close(fd);
    if (!line) {
        return NULL;
    }
    reply = json_loads(line, 0, NULL);
    free(line);
    return reply;
}

int control_broadcast(const char *run_dir, const char *cmd, const json_t *args,
                      const char *destination, int64_t timeout_ms, json_t **out_replies,
                      bp_error *err)
{
    json_t *req =
        json_pack("{s:s, s:O?, s:s?}", "cmd", cmd, "args", args, "destination", destination);
    json_t *replies = json_object();
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    char *line = text ? util_asprintf("%s\n", text) : NULL;
    DIR *d;
    struct dirent *de;
    int64_t end = util_now_ms() + timeout_ms;
    free(text);
    json_decref(req);
    *out_replies = NULL;
    if (!line || !replies) {
        free(line);
        json_decref(replies);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    d = opendir(run_dir);
    while (d && (de = readdir(d)) != NULL) {
        char path[4096];
        json_t *reply;
        int64_t left = end - util_now_ms();
        if (de->d_name[0] != 'c' || de->d_name[1] != '-' ||
            !util_str_ends_with(de->d_name, ".sock")) {
            continue;
        }
        if (left <= 0) {
            break;
        }
        snprintf(path, sizeof path, "%s/%s", run_dir, de->d_name);
        reply = ask(path, line, left);
        if (reply && !json_is_true(json_object_get(reply, "skipped")) &&
            json_is_string(json_object_get(reply, "worker"))) {
            json_object_set(replies, json_string_value(json_object_get(reply, "worker")), reply);
        }
        json_decref(reply);
    }
    if (d) {
        closedir(d);
    }
    free(line);
    *out_replies = replies;
    return BP_OK;
}
