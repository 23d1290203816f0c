/*
 * wake.c - cross-process wake-ups over unix datagram sockets (see wake.h).
 */
#include "wake.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

struct wake_listener {
    int fd;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

#define WAKE_MAX_PEERS 256

struct wake_sender {
    pthread_mutex_t lock;
    int fd;
    char dir[PATH_MAX];
    struct timespec dir_mtime;
    int n_peers;
    struct {
        char kind;
        char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    } peers[WAKE_MAX_PEERS];
};

static int set_sockaddr(struct sockaddr_un *sa, const char *path, bp_error *err)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (util_strlcpy(sa->sun_path, path, sizeof sa->sun_path) >= sizeof sa->sun_path) {
        return bp_err(err, BP_E_INVAL,
                      "socket path %s is longer than %zu bytes: choose a shorter data dir", path,
                      sizeof sa->sun_path - 1);
    }
    return BP_OK;
}

int wake_listen(const char *run_dir, char kind, wake_listener **out, bp_error *err)
{
    struct sockaddr_un sa;
    wake_listener *l;
    int rc;
    *out = NULL;
    rc = util_mkdir_p(run_dir, 0700, err);
    if (rc != BP_OK) {
        return rc;
    }
    l = calloc(1, sizeof *l);
    if (!l) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if ((size_t)snprintf(l->path, sizeof l->path, "%s/%c-%d-%08x.sock", run_dir, kind,
                         (int)getpid(),
                         (unsigned)(util_rand64() & 0xffffffffu)) >= sizeof l->path) {
        free(l);
        return bp_err(err, BP_E_INVAL, "run directory path %s is too long for a unix socket",
                      run_dir);
    }
    rc = set_sockaddr(&sa, l->path, err);
    if (rc != BP_OK) {
        free(l);
        return rc;
    }
    l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        char msg[128];
        int e = errno;
        if (l->fd >= 0) {
            close(l->fd);
        }
        free(l);
        return bp_err(err, BP_E_IO, "cannot bind wake socket in %s: %s", run_dir,
                      strerror_r(e, msg, sizeof msg) == 0 ? msg : "error");
    }
    *out = l;
    return BP_OK;
}

int wake_listener_fd(const wake_listener *l)
{
    return l->fd;
}

unsigned wake_drain(wake_listener *l)
{
    char buf[64];
    unsigned bits = 0;
    ssize_t n;
    while ((n = recv(l->fd, buf, sizeof buf, MSG_DONTWAIT)) >= 0) {
        for (ssize_t i = 0; i < n; i++) {
            bits |= WAKE_BIT(buf[i]);
        }
    }
    return bits;
}

void wake_listener_close(wake_listener *l)
{
    if (!l) {
        return;
    }
    close(l->fd);
    unlink(l->path);
    free(l);
}

int wake_sender_open(const char *run_dir, wake_sender **out, bp_error *err)
{
    wake_sender *s;
    int rc;
    *out = NULL;
    rc = util_mkdir_p(run_dir, 0700, err);
    if (rc != BP_OK) {
        return rc;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    util_strlcpy(s->dir, run_dir, sizeof s->dir);
    s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        free(s);
        return bp_err(err, BP_E_IO, "cannot create a wake socket");
    }
    pthread_mutex_init(&s->lock, NULL);
    s->n_peers = -1; /* force a first scan */
    *out = s;
    return BP_OK;
}

/* Re-read the directory when its mtime moved (a listener came or went). */
static void refresh_peers(wake_sender *s)
{
    struct stat st;
    DIR *d;
    struct dirent *de;
    if (stat(s->dir, &st) != 0) {
        s->n_peers = 0;
        return;
    }
    if (s->n_peers >= 0 && st.st_mtim.tv_sec == s->dir_mtime.tv_sec &&
        st.st_mtim.tv_nsec == s->dir_mtime.tv_nsec) {
        return;
    }
    s->dir_mtime = st.st_mtim;
    s->n_peers = 0;
    d = opendir(s->dir);
    if (!d) {
        return;
    }
    while ((de = readdir(d)) != NULL && s->n_peers < WAKE_MAX_PEERS) {
        const char *n = de->d_name;
        if ((n[0] != WAKE_KIND_WORK && n[0] != WAKE_KIND_DONE && n[0] != WAKE_KIND_EVENTS) ||
            n[1] != '-' || !util_str_ends_with(n, ".sock")) {
            continue;
        }
        if ((size_t)snprintf(s->peers[s->n_peers].path, sizeof s->peers[0].path, "%s/%s", s->dir,
                             n) < sizeof s->peers[0].path) {
            s->peers[s->n_peers].kind = n[0];
            s->n_peers++;
        }
    }
    closedir(d);
}

void wake_send(wake_sender *s, char kind, char byte)
{
    bool removed = false;
    if (!s) {
        return;
    }
    pthread_mutex_lock(&s->lock);
    refresh_peers(s);
    for (int i = 0; i < s->n_peers; i++) {
        struct sockaddr_un sa;
        if (s->peers[i].kind != kind || set_sockaddr(&sa, s->peers[i].path, NULL) != BP_OK) {
            continue;
        }
        if (sendto(s->fd, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa,
                   sizeof sa) < 0 &&
            (errno == ECONNREFUSED || errno == ENOENT)) {
            /* The owner died without cleaning up: nobody will ever read this socket. */
            unlink(s->peers[i].path);
            removed = true;
        }
        /* EAGAIN: the listener's buffer is full of wake-ups it has not read yet - it is awake
         * already, so dropping this one loses nothing. */
    }
    if (removed) {
        s->n_peers = -1;
    }
    pthread_mutex_unlock(&s->lock);
}

void wake_sender_close(wake_sender *s)
{
    if (!s) {
        return;
    }
    close(s->fd);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
