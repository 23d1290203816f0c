/*
 * http_fixture.c - scripted HTTP server for tests (see http_fixture.h).
 *
 * libmicrohttpd runs one thread per connection, so a delayed reply only holds up its own
 * connection and a test can have a slow request and a fast one in flight together. Replies that
 * must misbehave (cut short, huge, chunked) are produced by a content-reader callback; returning
 * MHD_CONTENT_READER_END_WITH_ERROR after the cut makes the server drop the connection with the
 * announced Content-Length unmet, which is exactly what a client sees when a server dies
 * mid-body.
 */
#include "http_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <criterion/criterion.h>
#include <microhttpd.h>
#include <zlib.h>

#include "support.h"

typedef struct script {
    char *path;
    bpt_http_reply *replies;
    size_t n;
    size_t served;
} script;

typedef struct seen_req {
    char *path;
    char *method;
    char *uri;
    char *headers;
    char *body;
    size_t body_len;
} seen_req;

struct bpt_http {
    struct MHD_Daemon *daemon;
    int port;
    char url[64];
    pthread_mutex_t lock;
    atomic_bool stopping;
    script *scripts;
    size_t n_scripts;
    seen_req *seen;
    size_t n_seen, cap_seen;
    char **owned; /* strings kept until stop */
    size_t n_owned, cap_owned;
};

/* Per-request state, created by the URI log callback before the handler runs. */
typedef struct conn_ctx {
    char *uri;
    char *body;
    size_t body_len, body_cap;
    bool started;
} conn_ctx;

/* What the content reader serves. */
typedef struct reader_ctx {
    char *data;   /* NULL: generate 'x' */
    uint64_t len; /* total body length */
    int64_t cut;  /* > 0: drop the connection after this many bytes */
} reader_ctx;

/* ---- small helpers ----------------------------------------------------------------------------
 */

static char *xstrndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    cr_assert(d);
    if (n) {
        memcpy(d, s, n);
    }
    d[n] = '\0';
    return d;
}

/* Keep `p` alive until bpt_http_stop (caller holds the lock or the server is not running). */
static char *own(bpt_http *s, char *p)
{
    if (!p) {
        return NULL;
    }
    if (s->n_owned == s->cap_owned) {
        s->cap_owned = s->cap_owned ? s->cap_owned * 2 : 32;
        s->owned = realloc(s->owned, s->cap_owned * sizeof *s->owned);
        cr_assert(s->owned);
    }
    s->owned[s->n_owned++] = p;
    return p;
}

static void append(char **buf, size_t *len, size_t *cap, const char *src, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap * 2 : 256;
        while (ncap < *len + n + 1) {
            ncap *= 2;
        }
        *buf = realloc(*buf, ncap);
        cr_assert(*buf);
        *cap = ncap;
    }
    memcpy(*buf + *len, src, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* gzip `n` bytes of `in` into a new buffer. */
static char *gzip_bytes(const char *in, size_t n, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    cr_assert_eq(
        deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    uLong bound = deflateBound(&zs, (uLong)n) + 32;
    char *out = malloc(bound);
    cr_assert(out);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = (Bytef *)out;
    zs.avail_out = (uInt)bound;
    cr_assert_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_len = bound - zs.avail_out;
    deflateEnd(&zs);
    return out;
}

/* ---- libmicrohttpd callbacks ------------------------------------------------------------------
 */

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *con)
{
    (void)cls;
    (void)con;
    conn_ctx *c = calloc(1, sizeof *c);
    if (c) {
        c->uri = strdup(uri);
    }
    return c;
}

static void request_done(void *cls, struct MHD_Connection *con, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)con;
    (void)toe;
    conn_ctx *c = *req_cls;
    if (c) {
        free(c->uri);
        free(c->body);
        free(c);
        *req_cls = NULL;
    }
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    reader_ctx *r = cls;
    if (r->cut > 0 && pos >= (uint64_t)r->cut) {
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (pos >= r->len) {
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    uint64_t n = r->len - pos;
    if (n > max) {
        n = max;
    }
    if (r->cut > 0 && pos + n > (uint64_t)r->cut) {
        n = (uint64_t)r->cut - pos;
    }
    if (r->data) {
        memcpy(buf, r->data + pos, (size_t)n);
    } else {
        memset(buf, 'x', (size_t)n);
    }
    return (ssize_t)n;
}

static void reader_free(void *cls)
{
    reader_ctx *r = cls;
    free(r->data);
    free(r);
}

typedef struct header_collect {
    char *buf;
    size_t len, cap;
} header_collect;

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    header_collect *h = cls;
    (void)kind;
    for (const char *k = key; *k; k++) {
        char c = (*k >= 'A' && *k <= 'Z') ? (char)(*k - 'A' + 'a') : *k;
        append(&h->buf, &h->len, &h->cap, &c, 1);
    }
    append(&h->buf, &h->len, &h->cap, ": ", 2);
    append(&h->buf, &h->len, &h->cap, value ? value : "", value ? strlen(value) : 0);
    append(&h->buf, &h->len, &h->cap, "\n", 1);
    return MHD_YES;
}

/* Add "Name: value" lines to a response (Content-Length / Transfer-Encoding are MHD's job). */
static void add_headers(struct MHD_Response *resp, const char *lines)
{
    const char *p = lines;
    while (p && *p) {
        const char *eol = p + strcspn(p, "\r\n");
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon) {
            char *name = xstrndup(p, (size_t)(colon - p));
            const char *v = colon + 1;
            while (v < eol && *v == ' ') {
                v++;
            }
            char *value = xstrndup(v, (size_t)(eol - v));
            if (strcasecmp(name, "Content-Length") != 0 &&
                strcasecmp(name, "Transfer-Encoding") != 0) {
                MHD_add_response_header(resp, name, value);
            }
            free(name);
            free(value);
        }
        p = eol;
        while (*p == '\r' || *p == '\n') {
            p++;
        }
    }
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *con, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **req_cls)
{
    bpt_http *s = cls;
    conn_ctx *c = *req_cls;
    (void)version;
    if (!c) {
        return MHD_NO;
    }
    if (!c->started) {
        c->started = true;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        append(&c->body, &c->body_len, &c->body_cap, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }

    /* record the request */
    header_collect hc = {0};
    MHD_get_connection_values(con, MHD_HEADER_KIND, collect_header, &hc);
    bpt_http_reply reply = {.status = 404, .body = "no script for this path\n"};
    bool found = false;
    pthread_mutex_lock(&s->lock);
    if (s->n_seen == s->cap_seen) {
        s->cap_seen = s->cap_seen ? s->cap_seen * 2 : 32;
        s->seen = realloc(s->seen, s->cap_seen * sizeof *s->seen);
        cr_assert(s->seen);
    }
    seen_req *sr = &s->seen[s->n_seen++];
    sr->path = strdup(url);
    sr->method = strdup(method);
    sr->uri = strdup(c->uri ? c->uri : url);
    sr->headers = hc.buf ? hc.buf : strdup("");
    sr->body = c->body ? c->body : strdup("");
    sr->body_len = c->body_len;
    c->body = NULL;
    for (size_t i = 0; i < s->n_scripts; i++) {
        script *sc = &s->scripts[i];
        if (strcmp(sc->path, url) == 0) {
            reply = sc->replies[sc->served < sc->n ? sc->served : sc->n - 1];
            sc->served++;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    (void)found;

    /* a slow server: wait, but give up at once when the fixture stops */
    for (int64_t waited = 0; waited < reply.delay_ms && !atomic_load(&s->stopping); waited += 10) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }

    /* the body to send */
    size_t len = reply.body ? (reply.body_len ? reply.body_len : strlen(reply.body)) : 0;
    char *data = NULL;
    if (reply.generate_bytes > 0) {
        len = (size_t)reply.generate_bytes;
        if (reply.gzip) {
            data = malloc(len);
            cr_assert(data);
            memset(data, 'x', len);
        }
    } else if (len) {
        data = xstrndup(reply.body, len);
    }
    bool gz = false;
    if (reply.gzip) {
        const char *ae = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Accept-Encoding");
        if (ae && strstr(ae, "gzip")) {
            size_t zlen;
            char *z = gzip_bytes(data ? data : "", len, &zlen);
            free(data);
            data = z;
            len = zlen;
            gz = true;
        }
    }

    struct MHD_Response *resp;
    if (reply.truncate_after > 0 || reply.chunked || (reply.generate_bytes > 0 && !data)) {
        reader_ctx *r = calloc(1, sizeof *r);
        cr_assert(r);
        r->data = data;
        r->len = len;
        r->cut = reply.truncate_after;
        resp = MHD_create_response_from_callback(reply.chunked ? MHD_SIZE_UNKNOWN : (uint64_t)len,
                                                 32 * 1024, reader, r, reader_free);
    } else {
        resp =
            MHD_create_response_from_buffer(len, data ? data : (void *)(uintptr_t) "",
                                            data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    }
    cr_assert(resp);
    add_headers(resp, reply.headers);
    if (gz) {
        MHD_add_response_header(resp, "Content-Encoding", "gzip");
    }
    enum MHD_Result ret =
        MHD_queue_response(con, (unsigned)(reply.status ? reply.status : 200), resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- public API --------------------------------------------------------------------------- */

bpt_http *bpt_http_start(void)
{
    bpt_http *s = calloc(1, sizeof *s);
    struct sockaddr_in sin;
    cr_assert(s);
    pthread_mutex_init(&s->lock, NULL);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = 0;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                                 NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR,
                                 (struct sockaddr *)&sin, MHD_OPTION_URI_LOG_CALLBACK, uri_logger,
                                 s, MHD_OPTION_NOTIFY_COMPLETED, request_done, s,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    cr_assert(s->daemon, "cannot start the HTTP fixture on 127.0.0.1");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    cr_assert(info && info->port > 0);
    s->port = info->port;
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
    return s;
}

void bpt_http_stop(bpt_http *s)
{
    if (!s) {
        return;
    }
    atomic_store(&s->stopping, true);
    MHD_stop_daemon(s->daemon);
    for (size_t i = 0; i < s->n_scripts; i++) {
        free(s->scripts[i].path);
        free(s->scripts[i].replies);
    }
    for (size_t i = 0; i < s->n_seen; i++) {
        free(s->seen[i].path);
        free(s->seen[i].method);
        free(s->seen[i].uri);
        free(s->seen[i].headers);
        free(s->seen[i].body);
    }
    for (size_t i = 0; i < s->n_owned; i++) {
        free(s->owned[i]);
    }
    free(s->scripts);
    free(s->seen);
    free(s->owned);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int bpt_http_port(const bpt_http *s)
{
    return s->port;
}

const char *bpt_http_url(const bpt_http *s)
{
    return s->url;
}

void bpt_http_script(bpt_http *s, const char *path, const bpt_http_reply *replies, size_t n)
{
    cr_assert(n > 0 && path && path[0] == '/');
    bpt_http_reply *copy = calloc(n, sizeof *copy);
    cr_assert(copy);
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < n; i++) {
        copy[i] = replies[i];
        if (replies[i].headers) {
            copy[i].headers = own(s, strdup(replies[i].headers));
        }
        if (replies[i].body) {
            size_t bl = replies[i].body_len ? replies[i].body_len : strlen(replies[i].body);
            copy[i].body = own(s, xstrndup(replies[i].body, bl));
            copy[i].body_len = bl;
        }
    }
    script *sc = NULL;
    for (size_t i = 0; i < s->n_scripts; i++) {
        if (strcmp(s->scripts[i].path, path) == 0) {
            sc = &s->scripts[i];
            free(sc->replies);
            break;
        }
    }
    if (!sc) {
        s->scripts = realloc(s->scripts, (s->n_scripts + 1) * sizeof *s->scripts);
        cr_assert(s->scripts);
        sc = &s->scripts[s->n_scripts++];
        sc->path = strdup(path);
    }
    sc->replies = copy;
    sc->n = n;
    sc->served = 0;
    pthread_mutex_unlock(&s->lock);
}

bpt_http_reply bpt_http_recorded(bpt_http *s, const char *base)
{
    size_t bl = strlen(base) + 16;
    char *hp = malloc(bl), *bp = malloc(bl);
    cr_assert(hp && bp);
    snprintf(hp, bl, "%s.headers", base);
    snprintf(bp, bl, "%s.json", base);
    char *head = bpt_slurp(hp);
    char *body = bpt_slurp(bp);
    cr_assert(head, "cannot read %s", hp);
    cr_assert(body, "cannot read %s", bp);
    free(hp);
    free(bp);

    bpt_http_reply r = {0};
    /* "HTTP/1.1 429 Too Many Requests" or "HTTP/2 200" */
    const char *sp = strchr(head, ' ');
    cr_assert(strncmp(head, "HTTP/", 5) == 0 && sp, "%s.headers: no status line", base);
    r.status = (int)strtol(sp + 1, NULL, 10);
    const char *lines = head + strcspn(head, "\r\n");
    while (*lines == '\r' || *lines == '\n') {
        lines++;
    }
    pthread_mutex_lock(&s->lock);
    r.headers = own(s, strdup(lines));
    r.body = own(s, body);
    pthread_mutex_unlock(&s->lock);
    r.body_len = strlen(body);
    free(head);
    return r;
}

size_t bpt_http_hits(bpt_http *s, const char *path)
{
    size_t n = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_seen; i++) {
        n += strcmp(s->seen[i].path, path) == 0;
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

bool bpt_http_request_seen(bpt_http *s, const char *path, size_t i, bpt_http_seen *out)
{
    bool ok = false;
    size_t k = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t j = 0; j < s->n_seen; j++) {
        if (strcmp(s->seen[j].path, path) != 0) {
            continue;
        }
        if (k++ == i) {
            out->method = s->seen[j].method;
            out->uri = s->seen[j].uri;
            out->headers = s->seen[j].headers;
            out->body = s->seen[j].body;
            out->body_len = s->seen[j].body_len;
            ok = true;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

char *bpt_http_seen_header(const bpt_http_seen *seen, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = seen->headers; p && *p;) {
        const char *eol = strchr(p, '\n');
        if (!eol) {
            eol = p + strlen(p);
        }
        if ((size_t)(eol - p) > nl + 1 && strncmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') {
                v++;
            }
            return xstrndup(v, (size_t)(eol - v));
        }
        p = *eol ? eol + 1 : eol;
    }
    return NULL;
}
