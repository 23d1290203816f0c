/*
 * redis_conn.c - URLs, connections, reconnection, scripts and pipelines over hiredis 0.14.
 *
 * The life of a connection is a small state machine:
 *
 *     up ──(I/O error, timeout, EOF)──► down ──(attempt allowed, connect ok)──► up
 *                                        │  ▲
 *                                        └──┘ attempt failed: wait backoff (x2, capped, jitter)
 *
 * "down" is entered once per outage and logged once; "up" after an outage is logged once with
 * the outage length. While down, calls fail fast with BP_E_UNAVAILABLE until the backoff delay
 * has passed, then the next call tries to connect. The first attempt after a loss is immediate:
 * a restarted Redis is usually back by the time anyone asks.
 */
#include "redis_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define REDIS_DEFAULT_PORT 6379
#define REDIS_MAX_DB       1000000

/* ============================================================================================
 * SHA-1, for EVALSHA digests computed without asking the server (FIPS 180-4).
 * ========================================================================================== */

typedef struct sha1_ctx {
    uint32_t h[5];
    uint64_t total;
    unsigned char block[64];
    size_t used;
} sha1_ctx;

static uint32_t rol32(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(sha1_ctx *s, const unsigned char *p)
{
    uint32_t w[80];
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];
    for (int i = 0; i < 16; i++) {
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    }
    for (int i = 16; i < 80; i++) {
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    }
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999u;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1u;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6u;
        }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    s->h[0] += a;
    s->h[1] += b;
    s->h[2] += c;
    s->h[3] += d;
    s->h[4] += e;
}

static void sha1_update(sha1_ctx *s, const unsigned char *p, size_t n)
{
    s->total += n;
    while (n > 0) {
        size_t take = 64 - s->used;
        if (take > n) {
            take = n;
        }
        memcpy(s->block + s->used, p, take);
        s->used += take;
        p += take;
        n -= take;
        if (s->used == 64) {
            sha1_block(s, s->block);
            s->used = 0;
        }
    }
}

static void sha1_hex(const char *text, char out[41])
{
    static const char hex[] = "0123456789abcdef";
    sha1_ctx s = {.h = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u}};
    unsigned char pad[72] = {0x80};
    uint64_t bits;
    size_t padlen;
    sha1_update(&s, (const unsigned char *)text, strlen(text));
    bits = s.total * 8;
    padlen = (s.used < 56 ? 56 : 120) - s.used;
    for (int i = 0; i < 8; i++) {
        pad[padlen + (size_t)i] = (unsigned char)(bits >> (56 - 8 * i));
    }
    sha1_update(&s, pad, padlen + 8);
    for (int i = 0; i < 5; i++) {
        for (int j = 0; j < 8; j++) {
            out[i * 8 + j] = hex[(s.h[i] >> (28 - 4 * j)) & 0xf];
        }
    }
    out[40] = '\0';
}

void redis_script_init(redis_script *s, const char *name, const char *source)
{
    s->name = name;
    s->source = source;
    sha1_hex(source, s->sha);
}

/* ============================================================================================
 * URLs
 * ========================================================================================== */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* Percent-decode s[0..n) into a new string; NULL on a bad escape or allocation failure. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t k = 0;
    if (!out) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n) {
                free(out);
                return NULL;
            }
            int a = hexval((unsigned char)s[i + 1]), b = hexval((unsigned char)s[i + 2]);
            if (a < 0 || b < 0) {
                free(out);
                return NULL;
            }
            out[k++] = (char)(a * 16 + b);
            i += 2;
        } else {
            out[k++] = s[i];
        }
    }
    out[k] = '\0';
    return out;
}

static char *pct_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1);
    size_t k = 0;
    if (!out) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            out[k++] = (char)ch;
        } else {
            out[k++] = '%';
            out[k++] = hex[ch >> 4];
            out[k++] = hex[ch & 15];
        }
    }
    out[k] = '\0';
    return out;
}

/* Append src[0..n) to buf at *k, never past len - 1. */
static void put(char *buf, size_t len, size_t *k, const char *src, size_t n)
{
    while (n-- > 0 && *k + 1 < len) {
        buf[(*k)++] = *src++;
    }
}

void redis_url_redact(const char *url, char *buf, size_t len)
{
    const char *scheme_end, *auth, *auth_end, *at = NULL, *q, *p;
    size_t k = 0;
    if (len == 0) {
        return;
    }
    buf[0] = '\0';
    if (!url) {
        return;
    }
    scheme_end = strstr(url, "://");
    auth = scheme_end ? scheme_end + 3 : url;
    put(buf, len, &k, url, (size_t)(auth - url));
    /* The user info ends at the last '@' before the path (unix URLs put the path right after
     * it, so look up to the query instead). */
    auth_end = auth + strcspn(auth, "?#");
    for (p = auth; p < auth_end; p++) {
        if (*p == '@') {
            at = p;
        }
    }
    if (!util_str_starts_with(url, "unix://") && at) {
        const char *slash = memchr(auth, '/', (size_t)(auth_end - auth));
        if (slash && slash < at) {
            /* an '@' inside the path is not user info - unless nothing else could be */
            at = NULL;
            for (p = auth; p < slash; p++) {
                if (*p == '@') {
                    at = p;
                }
            }
        }
    }
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon) {
            put(buf, len, &k, auth, (size_t)(colon - auth));
            put(buf, len, &k, ":***@", 5);
        } else {
            put(buf, len, &k, "***@", 4);
        }
        p = at + 1;
    } else {
        p = auth;
    }
    q = strchr(p, '?');
    if (!q) {
        put(buf, len, &k, p, strlen(p));
    } else {
        put(buf, len, &k, p, (size_t)(q + 1 - p));
        p = q + 1;
        while (*p) {
            size_t n = strcspn(p, "&");
            if (util_str_starts_with(p, "password=")) {
                put(buf, len, &k, "password=***", 12);
            } else {
                put(buf, len, &k, p, n);
            }
            p += n;
            if (*p == '&') {
                put(buf, len, &k, "&", 1);
                p++;
            }
        }
    }
    buf[k] = '\0';
}

void redis_url_clear(redis_url *u)
{
    if (!u) {
        return;
    }
    free(u->host);
    free(u->path);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof *u);
}

static int url_fail(bp_error *err, const char *url, const char *fmt, ...) BP_PRINTF(3, 4);

static int url_fail(bp_error *err, const char *url, const char *fmt, ...)
{
    char shown[256];
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    redis_url_redact(url, shown, sizeof shown);
    return bp_err(err, BP_E_CONFIG, "redis URL '%s': %s", shown, what);
}

static int parse_db(const char *url, const char *s, size_t n, int *out, bp_error *err)
{
    char tmp[32];
    int64_t v;
    if (n == 0) {
        *out = 0;
        return BP_OK;
    }
    if (n >= sizeof tmp) {
        return url_fail(err, url, "database number is too long");
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (util_parse_int64(tmp, 0, REDIS_MAX_DB, "db", &v, NULL) != BP_OK) {
        return url_fail(err, url, "database '%s' is not a number in [0, %d]", tmp, REDIS_MAX_DB);
    }
    *out = (int)v;
    return BP_OK;
}

static int set_decoded(const char *url, const char *what, const char *s, size_t n, char **field,
                       bp_error *err)
{
    char *v = pct_decode(s, n);
    if (!v) {
        return url_fail(err, url, "%s has a bad %%-escape", what);
    }
    free(*field);
    *field = v;
    return BP_OK;
}

static int parse_query(const char *url, const char *q, redis_url *u, bp_error *err)
{
    while (*q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        size_t kn = eq ? (size_t)(eq - q) : n;
        const char *v = eq ? eq + 1 : q + n;
        size_t vn = eq ? n - kn - 1 : 0;
        int rc = BP_OK;
        if (kn == 2 && strncmp(q, "db", 2) == 0) {
            rc = parse_db(url, v, vn, &u->db, err);
            if (rc == BP_OK && vn == 0) {
                rc = url_fail(err, url, "parameter db needs a value");
            }
        } else if (kn == 8 && strncmp(q, "password", 8) == 0) {
            rc = set_decoded(url, "password", v, vn, &u->password, err);
        } else if (kn == 8 && strncmp(q, "username", 8) == 0) {
            rc = set_decoded(url, "username", v, vn, &u->user, err);
        } else if (n > 0) {
            rc = url_fail(err, url, "unknown parameter '%.*s' (known: db, password, username)",
                          (int)kn, q);
        }
        if (rc != BP_OK) {
            return rc;
        }
        q += n;
        if (*q == '&') {
            q++;
        }
    }
    return BP_OK;
}

/* "user:password" or "user" or ":password" -> fields. */
static int parse_userinfo(const char *url, const char *s, size_t n, redis_url *u, bp_error *err)
{
    const char *colon = memchr(s, ':', n);
    int rc;
    if (colon) {
        if (colon > s &&
            (rc = set_decoded(url, "user name", s, (size_t)(colon - s), &u->user, err)) != BP_OK) {
            return rc;
        }
        return set_decoded(url, "password", colon + 1, n - (size_t)(colon - s) - 1, &u->password,
                           err);
    }
    return n > 0 ? set_decoded(url, "user name", s, n, &u->user, err) : BP_OK;
}

int redis_url_parse(const char *url, redis_url *out, bp_error *err)
{
    redis_url u = {0};
    const char *rest, *q, *end;
    int rc = BP_OK;
    memset(out, 0, sizeof *out);
    if (!url || !*url) {
        return bp_err(err, BP_E_CONFIG, "redis URL is empty");
    }
    if (util_str_starts_with(url, "redis://")) {
        rest = url + 8;
    } else if (util_str_starts_with(url, "rediss://")) {
        rest = url + 9;
        u.tls = true;
    } else if (util_str_starts_with(url, "unix://")) {
        rest = url + 7;
        u.unix_socket = true;
    } else {
        return url_fail(err, url, "expected redis://, rediss:// or unix://");
    }
    q = strchr(rest, '?');
    end = q ? q : rest + strlen(rest);

    if (u.unix_socket) {
        const char *path = rest;
        if (*rest != '/') {
            const char *at = NULL;
            for (const char *p = rest; p < end; p++) {
                if (*p == '@') {
                    at = p;
                }
            }
            if (!at) {
                rc = url_fail(err, url, "the socket path must be absolute (unix:///path)");
                goto fail;
            }
            if ((rc = parse_userinfo(url, rest, (size_t)(at - rest), &u, err)) != BP_OK) {
                goto fail;
            }
            path = at + 1;
        }
        if (path >= end || *path != '/') {
            rc = url_fail(err, url, "the socket path must be absolute (unix:///path)");
            goto fail;
        }
        if ((rc = set_decoded(url, "socket path", path, (size_t)(end - path), &u.path, err)) !=
            BP_OK) {
            goto fail;
        }
        if (strlen(u.path) >= 108) {
            rc = url_fail(err, url, "the socket path is longer than 107 bytes");
            goto fail;
        }
    } else {
        const char *slash = memchr(rest, '/', (size_t)(end - rest));
        const char *auth_end = slash ? slash : end;
        const char *at = NULL, *hp;
        for (const char *p = rest; p < auth_end; p++) {
            if (*p == '@') {
                at = p;
            }
        }
        if (at && (rc = parse_userinfo(url, rest, (size_t)(at - rest), &u, err)) != BP_OK) {
            goto fail;
        }
        hp = at ? at + 1 : rest;
        u.port = REDIS_DEFAULT_PORT;
        const char *port_s = NULL;
        size_t host_n;
        if (*hp == '[') {
            const char *rb = memchr(hp, ']', (size_t)(auth_end - hp));
            if (!rb) {
                rc = url_fail(err, url, "unterminated [IPv6] host");
                goto fail;
            }
            u.host = pct_decode(hp + 1, (size_t)(rb - hp - 1));
            if (rb + 1 < auth_end) {
                if (rb[1] != ':') {
                    rc = url_fail(err, url, "expected ':port' after the [IPv6] host");
                    goto fail;
                }
                port_s = rb + 2;
            }
        } else {
            const char *colon = NULL;
            for (const char *p = hp; p < auth_end; p++) {
                if (*p == ':') {
                    colon = p;
                }
            }
            host_n = (size_t)((colon ? colon : auth_end) - hp);
            u.host = host_n ? pct_decode(hp, host_n) : strdup("127.0.0.1");
            port_s = colon ? colon + 1 : NULL;
        }
        if (!u.host) {
            rc = url_fail(err, url, "bad host");
            goto fail;
        }
        if (port_s) {
            char tmp[16];
            size_t pn = (size_t)(auth_end - port_s);
            int64_t v;
            if (pn == 0 || pn >= sizeof tmp) {
                rc = url_fail(err, url, "bad port");
                goto fail;
            }
            memcpy(tmp, port_s, pn);
            tmp[pn] = '\0';
            if (util_parse_int64(tmp, 1, 65535, "port", &v, NULL) != BP_OK) {
                rc = url_fail(err, url, "port '%s' is not a number in [1, 65535]", tmp);
                goto fail;
            }
            u.port = (int)v;
        }
        if (slash &&
            (rc = parse_db(url, slash + 1, (size_t)(end - slash - 1), &u.db, err)) != BP_OK) {
            goto fail;
        }
    }
    if (q && (rc = parse_query(url, q + 1, &u, err)) != BP_OK) {
        goto fail;
    }
    *out = u;
    return BP_OK;
fail:
    redis_url_clear(&u);
    return rc;
}

int redis_url_from_parts(const char *host, const char *port, const char *db, const char *password,
                         char **out_url, bp_error *err)
{
    int64_t p = REDIS_DEFAULT_PORT, d = 0;
    char *enc = NULL, *hostpart = NULL;
    *out_url = NULL;
    if (!host || !*host) {
        return bp_err(err, BP_E_CONFIG, "REDIS_HOST is empty");
    }
    if (strpbrk(host, " \t\r\n/?#@") && host[0] != '/') {
        return bp_err(err, BP_E_CONFIG, "REDIS_HOST '%s' is not a host name or address", host);
    }
    if (port && *port && util_parse_int64(port, 1, 65535, "REDIS_PORT", &p, err) != BP_OK) {
        if (err) {
            err->code = BP_E_CONFIG;
        }
        return BP_E_CONFIG;
    }
    if (db && *db && util_parse_int64(db, 0, REDIS_MAX_DB, "REDIS_DB", &d, err) != BP_OK) {
        if (err) {
            err->code = BP_E_CONFIG;
        }
        return BP_E_CONFIG;
    }
    if (password && *password && !(enc = pct_encode(password))) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if (host[0] == '/') {
        char *path = pct_encode(host);
        if (!path) {
            free(enc);
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
        /* pct_encode escaped the slashes too; a path only needs the odd characters escaped,
         * so undo it for '/' to keep the URL readable. */
        char *w = path;
        for (const char *r = path; *r;) {
            if (strncmp(r, "%2F", 3) == 0) {
                *w++ = '/';
                r += 3;
            } else {
                *w++ = *r++;
            }
        }
        *w = '\0';
        *out_url = util_asprintf("unix://%s%s%s%s?db=%" PRId64, enc ? ":" : "", enc ? enc : "",
                                 enc ? "@" : "", path, d);
        free(path);
    } else {
        hostpart = strchr(host, ':') ? util_asprintf("[%s]", host) : strdup(host);
        if (hostpart) {
            *out_url = util_asprintf("redis://%s%s%s%s:%" PRId64 "/%" PRId64, enc ? ":" : "",
                                     enc ? enc : "", enc ? "@" : "", hostpart, p, d);
        }
    }
    free(hostpart);
    free(enc);
    return *out_url ? BP_OK : bp_err(err, BP_E_NOMEM, "out of memory");
}

int redis_url_from_env(char **out_url, bp_error *err)
{
    const char *host = getenv("REDIS_HOST");
    *out_url = NULL;
    if (!host || !*host) {
        return bp_err(err, BP_E_NOTFOUND, "REDIS_HOST is not set");
    }
    return redis_url_from_parts(host, getenv("REDIS_PORT"), getenv("REDIS_DB"),
                                getenv("REDIS_PASSWORD"), out_url, err);
}

/* ============================================================================================
 * Replies
 * ========================================================================================== */

int redis_reply_status(const redisReply *r, const char *what, bp_error *err)
{
    static const struct {
        const char *prefix;
        int code;
    } map[] = {
        {"LOADING", BP_E_UNAVAILABLE},
        {"BUSY", BP_E_UNAVAILABLE},
        {"MASTERDOWN", BP_E_UNAVAILABLE},
        {"READONLY", BP_E_UNAVAILABLE},
        {"TRYAGAIN", BP_E_UNAVAILABLE},
        {"CLUSTERDOWN", BP_E_UNAVAILABLE},
        {"OOM", BP_E_LIMIT},
        {"NOAUTH", BP_E_CONFIG},
        {"WRONGPASS", BP_E_CONFIG},
        {"NOPERM", BP_E_CONFIG},
        {"NOSCRIPT", BP_E_NOTFOUND},
    };
    if (!r) {
        return bp_err(err, BP_E_INTERNAL, "%s: no reply", what);
    }
    if (r->type != REDIS_REPLY_ERROR) {
        return BP_OK;
    }
    for (size_t i = 0; i < BP_ARRAY_LEN(map); i++) {
        size_t n = strlen(map[i].prefix);
        if (r->len >= n && strncmp(r->str, map[i].prefix, n) == 0 &&
            (r->len == n || r->str[n] == ' ')) {
            return bp_err(err, map[i].code, "%s: %.*s", what, (int)r->len, r->str);
        }
    }
    return bp_err(err, BP_E_INTERNAL, "%s: %.*s", what, (int)r->len, r->str);
}

bool redis_reply_is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && r->len >= 8 && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* ============================================================================================
 * Connections
 * ========================================================================================== */

struct redis_conn {
    char *url;  /* with the password: needed to reconnect, never shown */
    char *name; /* redacted, for messages */
    redis_url u;
    redis_conn_options o;
    char *client_name;
    char *component;

    redisContext *ctx;
    size_t pending;  /* pipelined commands not read yet */
    bool subscribed; /* pub/sub mode: no health-check PING */
    uint64_t generation;
    int64_t last_used_ms; /* monotonic */

    /* outage bookkeeping */
    bool in_outage;
    int64_t outage_start_ms; /* monotonic */
    int attempts;            /* failed reconnects in this outage */
    int64_t backoff_ms;
    int64_t next_attempt_ms; /* monotonic */
    char last_error[BP_ERROR_MSG_MAX];

    const redis_script *const *preload;
    size_t n_preload;

    int intr_fd; /* eventfd written by redis_conn_interrupt */
};

static int64_t mono_ms(void)
{
    return util_mono_ns() / 1000000;
}

static struct timeval tv_of(int64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

void redis_conn_options_default(redis_conn_options *o)
{
    memset(o, 0, sizeof *o);
    o->connect_timeout_ms = 5000;
    o->command_timeout_ms = 5000;
    o->keepalive = true;
    o->backoff_min_ms = 100;
    o->backoff_max_ms = 5000;
    o->health_check_ms = 15000;
    o->client_name = "betpipe";
    o->log_component = "redis";
}

const char *redis_conn_name(const redis_conn *c)
{
    return c->name;
}

bool redis_conn_is_up(const redis_conn *c)
{
    return c->ctx != NULL;
}

uint64_t redis_conn_generation(const redis_conn *c)
{
    return c->generation;
}

int64_t redis_conn_retry_in_ms(const redis_conn *c)
{
    int64_t left;
    if (c->ctx) {
        return 0;
    }
    left = c->next_attempt_ms - mono_ms();
    return left > 0 ? left : 0;
}

void redis_conn_set_subscribed(redis_conn *c, bool on)
{
    c->subscribed = on;
}

/* hiredis reports a socket timeout as EAGAIN's text; say what it means. */
static void describe_ctx_error(const redis_conn *c, const redisContext *ctx, int64_t timeout_ms,
                               char *buf, size_t len)
{
    if (!ctx) {
        snprintf(buf, len, "out of memory");
    } else if (ctx->err == REDIS_ERR_IO && (strstr(ctx->errstr, "temporarily unavailable") ||
                                            strstr(ctx->errstr, "timed out"))) {
        snprintf(buf, len, "no reply within %" PRId64 " ms", timeout_ms);
    } else if (ctx->err == REDIS_ERR_EOF) {
        snprintf(buf, len, "server closed the connection");
    } else {
        snprintf(buf, len, "%s", ctx->errstr[0] ? ctx->errstr : "I/O error");
    }
    (void)c;
}

/* Free the context without starting an outage (a cancelled blocking call, an explicit drop). */
static void drop_quietly(redis_conn *c)
{
    if (c->ctx) {
        redisFree(c->ctx);
        c->ctx = NULL;
    }
    c->pending = 0;
    c->subscribed = false;
    c->next_attempt_ms = mono_ms();
}

/* The connection broke under a caller: drop it and log the outage once. The first reconnect
 * attempt is allowed at once. */
static void mark_down(redis_conn *c, const char *why)
{
    drop_quietly(c);
    if (why != c->last_error) { /* callers may pass the last error itself */
        snprintf(c->last_error, sizeof c->last_error, "%s", why);
    }
    if (!c->in_outage) {
        c->in_outage = true;
        c->outage_start_ms = mono_ms();
        c->attempts = 0;
        c->backoff_ms = 0;
        log_warn(c->component,
                 "redis connection lost server=%s client=%s error=\"%s\"; "
                 "reconnecting with backoff",
                 c->name, c->client_name, why);
    }
}

static int setup_fail(redis_conn *c, redisContext *ctx, int code, bp_error *err, const char *fmt,
                      ...) BP_PRINTF(5, 6);

static int setup_fail(redis_conn *c, redisContext *ctx, int code, bp_error *err, const char *fmt,
                      ...)
{
    char msg[BP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ctx) {
        redisFree(ctx);
    }
    snprintf(c->last_error, sizeof c->last_error, "%s", msg);
    return bp_err(err, code, "redis %s: %s", c->name, msg);
}

/* Run one setup command on a fresh context; error replies become `code_on_error`. */
static int setup_cmd(redis_conn *c, redisContext *ctx, const char *what, int argc,
                     const char **argv, bp_error *err)
{
    char why[200];
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    int rc;
    if (!r) {
        describe_ctx_error(c, ctx, c->o.command_timeout_ms, why, sizeof why);
        return setup_fail(c, ctx, BP_E_UNAVAILABLE, err, "%s: %s", what, why);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        bp_error e;
        rc = redis_reply_status(r, what, &e);
        /* Anything but "the server is busy loading" is a configuration problem here: a wrong
         * password, a database the server does not have, a user without permission. */
        if (rc != BP_E_UNAVAILABLE) {
            rc = BP_E_CONFIG;
        }
        freeReplyObject(r);
        return setup_fail(c, ctx, rc, err, "%s", e.msg);
    }
    freeReplyObject(r);
    return BP_OK;
}

static int load_scripts(redis_conn *c, redisContext *ctx, bp_error *err)
{
    for (size_t i = 0; i < c->n_preload; i++) {
        const redis_script *s = c->preload[i];
        redisReply *r = redisCommand(ctx, "SCRIPT LOAD %s", s->source);
        char why[200];
        if (!r) {
            describe_ctx_error(c, ctx, c->o.command_timeout_ms, why, sizeof why);
            return setup_fail(c, ctx, BP_E_UNAVAILABLE, err, "SCRIPT LOAD %s: %s", s->name, why);
        }
        if (r->type != REDIS_REPLY_STRING || r->len != 40 || memcmp(r->str, s->sha, 40) != 0) {
            bp_error e;
            int rc = r->type == REDIS_REPLY_ERROR
                         ? redis_reply_status(r, "SCRIPT LOAD", &e)
                         : bp_err(&e, BP_E_INTERNAL, "SCRIPT LOAD: unexpected digest");
            freeReplyObject(r);
            return setup_fail(c, ctx, rc, err, "script %s: %s", s->name, e.msg);
        }
        freeReplyObject(r);
    }
    return BP_OK;
}

/* Connect, authenticate, select, name, load scripts. On success c->ctx is set. */
static int connect_now(redis_conn *c, bp_error *err)
{
    redisContext *ctx;
    char why[200];
    int rc;
    if (c->u.tls) {
        return setup_fail(c, NULL, BP_E_CONFIG, err,
                          "rediss:// needs TLS, which this build's hiredis %d.%d does not "
                          "support; use a unix socket or redis:// on a trusted network, or put "
                          "a TLS proxy (stunnel, ghostunnel) in front of Redis",
                          HIREDIS_MAJOR, HIREDIS_MINOR);
    }
    if (c->u.unix_socket) {
        ctx = redisConnectUnixWithTimeout(c->u.path, tv_of(c->o.connect_timeout_ms));
    } else {
        ctx = redisConnectWithTimeout(c->u.host, c->u.port, tv_of(c->o.connect_timeout_ms));
    }
    if (!ctx || ctx->err) {
        describe_ctx_error(c, ctx, c->o.connect_timeout_ms, why, sizeof why);
        return setup_fail(c, ctx, ctx ? BP_E_UNAVAILABLE : BP_E_NOMEM, err, "cannot connect: %s",
                          why);
    }
    /* hiredis 0.14 opens its socket without close-on-exec: keep it out of isolated children.
     * (A child spawned in the instant between socket() and this call still gets a copy; it dies
     * with the daemon, so the copy cannot outlive it.) */
    fcntl(ctx->fd, F_SETFD, fcntl(ctx->fd, F_GETFD) | FD_CLOEXEC);
    if (redisSetTimeout(ctx, tv_of(c->o.command_timeout_ms)) != REDIS_OK) {
        return setup_fail(c, ctx, BP_E_IO, err, "cannot set the socket timeout: %s", ctx->errstr);
    }
    if (!c->u.unix_socket && c->o.keepalive && redisEnableKeepAlive(ctx) != REDIS_OK) {
        return setup_fail(c, ctx, BP_E_IO, err, "cannot enable TCP keepalive: %s", ctx->errstr);
    }
    if (c->u.password || c->u.user) {
        const char *argv[3] = {"AUTH", NULL, NULL};
        int argc = 2;
        if (c->u.user) {
            argv[1] = c->u.user;
            argv[2] = c->u.password ? c->u.password : "";
            argc = 3;
        } else {
            argv[1] = c->u.password;
        }
        if ((rc = setup_cmd(c, ctx, "authentication failed", argc, argv, err)) != BP_OK) {
            return rc;
        }
    }
    if (c->u.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", c->u.db);
        const char *argv[2] = {"SELECT", db};
        if ((rc = setup_cmd(c, ctx, "SELECT", 2, argv, err)) != BP_OK) {
            return rc;
        }
    }
    {
        const char *argv[3] = {"CLIENT", "SETNAME", c->client_name};
        if ((rc = setup_cmd(c, ctx, "CLIENT SETNAME", 3, argv, err)) != BP_OK) {
            return rc;
        }
    }
    if ((rc = load_scripts(c, ctx, err)) != BP_OK) {
        return rc;
    }
    c->ctx = ctx;
    c->pending = 0;
    c->subscribed = false;
    c->generation++;
    c->last_used_ms = mono_ms();
    return BP_OK;
}

/* One reconnect attempt, if the backoff allows it now. */
static int try_reconnect(redis_conn *c, bp_error *err)
{
    int64_t now = mono_ms();
    int rc;
    if (now < c->next_attempt_ms) {
        return bp_err(err, BP_E_UNAVAILABLE,
                      "redis %s is unavailable (%s); next reconnect attempt in %" PRId64 " ms",
                      c->name, c->last_error, c->next_attempt_ms - now);
    }
    rc = connect_now(c, err);
    if (rc == BP_OK) {
        if (c->in_outage) {
            log_info(c->component,
                     "redis connection restored server=%s client=%s outage_ms=%" PRId64
                     " failed_attempts=%d",
                     c->name, c->client_name, mono_ms() - c->outage_start_ms, c->attempts);
        }
        c->in_outage = false;
        c->attempts = 0;
        c->backoff_ms = 0;
        return BP_OK;
    }
    if (!c->in_outage) {
        c->in_outage = true;
        c->outage_start_ms = now;
        log_warn(c->component,
                 "redis unreachable server=%s client=%s error=\"%s\"; "
                 "retrying with backoff",
                 c->name, c->client_name, c->last_error);
    }
    c->attempts++;
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : c->o.backoff_min_ms;
    if (c->backoff_ms > c->o.backoff_max_ms) {
        c->backoff_ms = c->o.backoff_max_ms;
    }
    /* Equal jitter: somewhere in [delay/2, delay], so a fleet of daemons that lost Redis at the
     * same instant does not reconnect in lock step. */
    c->next_attempt_ms =
        mono_ms() + c->backoff_ms / 2 + (int64_t)(util_rand01() * (double)(c->backoff_ms / 2));
    return rc;
}

/* With no reply outstanding, an idle socket has nothing to say: if it polls readable, the
 * server closed it (EOF) or wrote its last words before closing (an idle timeout, a shutdown).
 * Noticing that here, before sending, costs one poll(2) and turns "Redis restarted while we were
 * idle" into a reconnect instead of a failed command - the command has not been sent. */
static bool closed_while_idle(const redis_conn *c)
{
    struct pollfd p = {c->ctx->fd, POLLIN, 0};
    return !c->subscribed && c->pending == 0 && poll(&p, 1, 0) == 1 &&
           (p.revents & (POLLIN | POLLHUP | POLLERR));
}

static int ensure_up(redis_conn *c, bp_error *err)
{
    if (!c->ctx) {
        return try_reconnect(c, err);
    }
    if (closed_while_idle(c)) {
        mark_down(c, "server closed the connection");
        return try_reconnect(c, err);
    }
    if (c->o.health_check_ms > 0 && !c->subscribed && c->pending == 0 &&
        mono_ms() - c->last_used_ms >= c->o.health_check_ms) {
        redisReply *r = redisCommand(c->ctx, "PING");
        if (!r) {
            char why[200];
            describe_ctx_error(c, c->ctx, c->o.command_timeout_ms, why, sizeof why);
            mark_down(c, why);
            return try_reconnect(c, err);
        }
        freeReplyObject(r);
        c->last_used_ms = mono_ms();
    }
    return BP_OK;
}

int redis_conn_check(redis_conn *c, bp_error *err)
{
    if (c->pending > 0) {
        return BP_OK;
    }
    return ensure_up(c, err);
}

void redis_conn_drop(redis_conn *c)
{
    drop_quietly(c);
}

void redis_conn_interrupt(redis_conn *c)
{
    uint64_t one = 1;
    if (c && c->intr_fd >= 0 && write(c->intr_fd, &one, sizeof one) < 0) {
        /* the counter is saturated: an interrupt is pending anyway */
    }
}

static bool take_interrupt(redis_conn *c)
{
    uint64_t v;
    return read(c->intr_fd, &v, sizeof v) == (ssize_t)sizeof v;
}

/* hiredis writes with write(2): a server that closed the socket would kill the process with
 * SIGPIPE instead of returning EPIPE. Ignore it - unless the program chose a handler itself. */
static void ignore_sigpipe_once(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO)) {
        struct sigaction ign;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        sigemptyset(&ign.sa_mask);
        sigaction(SIGPIPE, &ign, NULL);
    }
}

int redis_conn_open(const char *url, const redis_conn_options *opts, redis_conn **out,
                    bp_error *err)
{
    static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;
    redis_conn *c;
    redis_conn_options o;
    char shown[512];
    int rc;
    *out = NULL;
    pthread_once(&sigpipe_once, ignore_sigpipe_once);
    if (opts) {
        o = *opts;
    } else {
        redis_conn_options_default(&o);
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    c->intr_fd = -1;
    if ((rc = redis_url_parse(url, &c->u, err)) != BP_OK) {
        goto fail;
    }
    redis_url_redact(url, shown, sizeof shown);
    c->url = strdup(url);
    c->name = strdup(shown);
    c->client_name = strdup(o.client_name && *o.client_name ? o.client_name : "betpipe");
    c->component = strdup(o.log_component && *o.log_component ? o.log_component : "redis");
    c->intr_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!c->url || !c->name || !c->client_name || !c->component) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto fail;
    }
    if (c->intr_fd < 0) {
        rc = bp_err(err, BP_E_IO, "redis %s: eventfd failed", c->name);
        goto fail;
    }
    /* CLIENT SETNAME refuses spaces. */
    for (char *p = c->client_name; *p; p++) {
        if (*p == ' ' || *p == '\n' || *p == '\r') {
            *p = '-';
        }
    }
    if (o.connect_timeout_ms <= 0) {
        o.connect_timeout_ms = 5000;
    }
    if (o.command_timeout_ms <= 0) {
        o.command_timeout_ms = 5000;
    }
    if (o.backoff_min_ms <= 0) {
        o.backoff_min_ms = 100;
    }
    if (o.backoff_max_ms < o.backoff_min_ms) {
        o.backoff_max_ms = o.backoff_min_ms;
    }
    o.client_name = c->client_name;
    o.log_component = c->component;
    c->o = o;
    c->next_attempt_ms = mono_ms();
    if (c->u.tls) {
        rc = connect_now(c, err);
        goto fail;
    }
    rc = o.lazy ? try_reconnect(c, NULL) : connect_now(c, err);
    if (rc != BP_OK && !(o.lazy && rc == BP_E_UNAVAILABLE)) {
        if (o.lazy && err) {
            bp_err(err, rc, "redis %s: %s", c->name, c->last_error);
        }
        goto fail;
    }
    *out = c;
    return BP_OK;
fail:
    redis_conn_close(c);
    return rc;
}

void redis_conn_close(redis_conn *c)
{
    if (!c) {
        return;
    }
    if (c->ctx) {
        redisFree(c->ctx);
    }
    if (c->intr_fd >= 0) {
        close(c->intr_fd);
    }
    redis_url_clear(&c->u);
    free(c->url);
    free(c->name);
    free(c->client_name);
    free(c->component);
    free(c);
}

int redis_conn_preload(redis_conn *c, const redis_script *const *scripts, size_t n, bp_error *err)
{
    c->preload = scripts;
    c->n_preload = n;
    if (!c->ctx) {
        return BP_OK;
    }
    if (c->pending > 0) {
        return bp_err(err, BP_E_STATE, "redis %s: cannot load scripts inside a pipeline", c->name);
    }
    int rc = load_scripts(c, c->ctx, err);
    if (rc != BP_OK) {
        /* load_scripts freed the context on failure */
        c->ctx = NULL;
        mark_down(c, c->last_error);
    }
    return rc;
}

/* ---- commands ------------------------------------------------------------------------------ */

/* The first word of a command, for messages ("EVALSHA" -> the script name is better, callers
 * pass `what`). */
static void cmd_name(int argc, const char **argv, const size_t *lens, char *buf, size_t len)
{
    size_t n;
    if (argc < 1) {
        snprintf(buf, len, "command");
        return;
    }
    n = lens ? lens[0] : strlen(argv[0]);
    if (n >= len) {
        n = len - 1;
    }
    memcpy(buf, argv[0], n);
    buf[n] = '\0';
}

static int transport_fail(redis_conn *c, const char *what, int64_t timeout_ms, bp_error *err)
{
    char why[200];
    describe_ctx_error(c, c->ctx, timeout_ms, why, sizeof why);
    mark_down(c, why);
    return bp_err(err, BP_E_UNAVAILABLE, "redis %s: %s failed: %s", c->name, what, why);
}

/* Send one command and return the raw reply (error replies included). */
static int exec_raw(redis_conn *c, const char *what, int argc, const char **argv,
                    const size_t *lens, redisReply **out, bp_error *err)
{
    int rc;
    *out = NULL;
    if (c->pending > 0) {
        return bp_err(err, BP_E_STATE,
                      "redis %s: %s issued while %zu pipelined replies are "
                      "unread",
                      c->name, what, c->pending);
    }
    if ((rc = ensure_up(c, err)) != BP_OK) {
        return rc;
    }
    *out = redisCommandArgv(c->ctx, argc, argv, lens);
    if (!*out) {
        return transport_fail(c, what, c->o.command_timeout_ms, err);
    }
    c->last_used_ms = mono_ms();
    return BP_OK;
}

static int finish_reply(redisReply *r, const char *what, redisReply **out, bp_error *err)
{
    int rc = redis_reply_status(r, what, err);
    if (rc != BP_OK) {
        freeReplyObject(r);
        r = NULL;
    }
    if (out) {
        *out = r;
    } else if (r) {
        freeReplyObject(r);
    }
    return rc;
}

int redis_conn_command_argv(redis_conn *c, int argc, const char **argv, const size_t *lens,
                            redisReply **out, bp_error *err)
{
    char what[64];
    redisReply *r;
    int rc;
    if (out) {
        *out = NULL;
    }
    cmd_name(argc, argv, lens, what, sizeof what);
    if ((rc = exec_raw(c, what, argc, argv, lens, &r, err)) != BP_OK) {
        return rc;
    }
    return finish_reply(r, what, out, err);
}

int redis_conn_command(redis_conn *c, redisReply **out, bp_error *err, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    char what[64];
    int rc;
    if (out) {
        *out = NULL;
    }
    snprintf(what, sizeof what, "%.*s", (int)strcspn(fmt, " "), fmt);
    if (c->pending > 0) {
        return bp_err(err, BP_E_STATE, "redis %s: %s issued inside a pipeline", c->name, what);
    }
    if ((rc = ensure_up(c, err)) != BP_OK) {
        return rc;
    }
    va_start(ap, fmt);
    r = redisvCommand(c->ctx, fmt, ap);
    va_end(ap);
    if (!r) {
        return transport_fail(c, what, c->o.command_timeout_ms, err);
    }
    c->last_used_ms = mono_ms();
    return finish_reply(r, what, out, err);
}

/* Wait for one reply with poll(), honouring interrupts. `fatal_timeout`: a timeout means the
 * server is unresponsive (drop the connection) rather than "nothing to read yet". */
static int await_reply(redis_conn *c, const char *what, int64_t timeout_ms, bool fatal_timeout,
                       redisReply **out, bp_error *err)
{
    int64_t deadline = mono_ms() + timeout_ms;
    void *reply = NULL;
    int done = 0;
    *out = NULL;
    /* Flush what is queued (blocking socket: write waits for room). */
    while (!done) {
        if (redisBufferWrite(c->ctx, &done) != REDIS_OK) {
            return transport_fail(c, what, timeout_ms, err);
        }
    }
    for (;;) {
        if (redisGetReplyFromReader(c->ctx, &reply) != REDIS_OK) {
            return transport_fail(c, what, timeout_ms, err);
        }
        if (reply) {
            *out = reply;
            c->last_used_ms = mono_ms();
            return BP_OK;
        }
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            if (!fatal_timeout) {
                return bp_err(err, BP_E_TIMEOUT, "redis %s: %s: nothing within %" PRId64 " ms",
                              c->name, what, timeout_ms);
            }
            char why[128];
            snprintf(why, sizeof why, "%s: no reply within %" PRId64 " ms", what, timeout_ms);
            mark_down(c, why);
            return bp_err(err, BP_E_UNAVAILABLE, "redis %s: %s", c->name, why);
        }
        struct pollfd fds[2] = {{c->ctx->fd, POLLIN, 0}, {c->intr_fd, POLLIN, 0}};
        int n = poll(fds, 2, (int)(left > 1000000 ? 1000000 : left));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return transport_fail(c, what, timeout_ms, err);
        }
        if (fds[1].revents & POLLIN) {
            take_interrupt(c);
            drop_quietly(c);
            return bp_err(err, BP_E_CANCELLED, "redis %s: %s interrupted", c->name, what);
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (redisBufferRead(c->ctx) != REDIS_OK) {
                return transport_fail(c, what, timeout_ms, err);
            }
        }
    }
}

int redis_conn_command_blocking(redis_conn *c, int64_t block_ms, int argc, const char **argv,
                                const size_t *lens, redisReply **out, bp_error *err)
{
    char what[64];
    redisReply *r = NULL;
    int rc;
    if (out) {
        *out = NULL;
    }
    cmd_name(argc, argv, lens, what, sizeof what);
    if (c->pending > 0) {
        return bp_err(err, BP_E_STATE, "redis %s: %s issued inside a pipeline", c->name, what);
    }
    /* A stale interrupt would cancel this call at once; that is the documented meaning ("the
     * current or the next blocking call"), so it is kept. */
    if ((rc = ensure_up(c, err)) != BP_OK) {
        return rc;
    }
    if (redisAppendCommandArgv(c->ctx, argc, argv, lens) != REDIS_OK) {
        return bp_err(err, BP_E_NOMEM, "redis %s: %s: out of memory", c->name, what);
    }
    if ((rc = await_reply(c, what, block_ms + c->o.command_timeout_ms, true, &r, err)) != BP_OK) {
        return rc;
    }
    return finish_reply(r, what, out, err);
}

int redis_conn_wait_reply(redis_conn *c, int64_t timeout_ms, redisReply **out, bp_error *err)
{
    redisReply *r = NULL;
    int rc;
    *out = NULL;
    if (!c->ctx) {
        return bp_err(err, BP_E_UNAVAILABLE, "redis %s is not connected (%s)", c->name,
                      c->last_error[0] ? c->last_error : "no connection yet");
    }
    if ((rc = await_reply(c, "waiting for a message", timeout_ms, false, &r, err)) != BP_OK) {
        return rc;
    }
    *out = r;
    return BP_OK;
}

/* ---- pipelining ---------------------------------------------------------------------------- */

int redis_conn_append_argv(redis_conn *c, int argc, const char **argv, const size_t *lens,
                           bp_error *err)
{
    int rc;
    if (c->pending == 0 && (rc = ensure_up(c, err)) != BP_OK) {
        return rc;
    }
    if (!c->ctx) {
        return bp_err(err, BP_E_UNAVAILABLE, "redis %s: connection lost in a pipeline", c->name);
    }
    if (redisAppendCommandArgv(c->ctx, argc, argv, lens) != REDIS_OK) {
        return bp_err(err, BP_E_NOMEM, "redis %s: out of memory", c->name);
    }
    c->pending++;
    return BP_OK;
}

int redis_conn_append(redis_conn *c, bp_error *err, const char *fmt, ...)
{
    va_list ap;
    int rc;
    if (c->pending == 0 && (rc = ensure_up(c, err)) != BP_OK) {
        return rc;
    }
    if (!c->ctx) {
        return bp_err(err, BP_E_UNAVAILABLE, "redis %s: connection lost in a pipeline", c->name);
    }
    va_start(ap, fmt);
    rc = redisvAppendCommand(c->ctx, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        return bp_err(err, BP_E_NOMEM, "redis %s: out of memory", c->name);
    }
    c->pending++;
    return BP_OK;
}

size_t redis_conn_pending(const redis_conn *c)
{
    return c->pending;
}

int redis_conn_read_replies(redis_conn *c, redisReply **out, size_t n, bp_error *err)
{
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = NULL;
    }
    if (n != c->pending) {
        return bp_err(err, BP_E_INTERNAL, "redis %s: %zu replies asked, %zu commands queued",
                      c->name, n, c->pending);
    }
    if (n == 0) {
        return BP_OK;
    }
    if (!c->ctx) {
        c->pending = 0;
        return bp_err(err, BP_E_UNAVAILABLE, "redis %s: connection lost in a pipeline", c->name);
    }
    for (got = 0; got < n; got++) {
        void *r = NULL;
        if (redisGetReply(c->ctx, &r) != REDIS_OK || !r) {
            for (size_t i = 0; i < got; i++) {
                freeReplyObject(out[i]);
                out[i] = NULL;
            }
            c->pending = 0;
            return transport_fail(c, "pipeline", c->o.command_timeout_ms, err);
        }
        out[got] = r;
    }
    c->pending = 0;
    c->last_used_ms = mono_ms();
    return BP_OK;
}

/* ---- scripts ------------------------------------------------------------------------------- */

/* Build "EVALSHA|EVAL <sha|source> <nkeys> argv..." into a new argv. */
static int eval_argv(const redis_script *s, bool by_source, int nkeys, int argc, const char **argv,
                     const size_t *lens, char *nkeys_buf, size_t nkeys_len, const char ***out_v,
                     size_t **out_l)
{
    const char **v = malloc(sizeof *v * (size_t)(argc + 3));
    size_t *l = malloc(sizeof *l * (size_t)(argc + 3));
    if (!v || !l) {
        free(v);
        free(l);
        return BP_E_NOMEM;
    }
    snprintf(nkeys_buf, nkeys_len, "%d", nkeys);
    v[0] = by_source ? "EVAL" : "EVALSHA";
    l[0] = strlen(v[0]);
    v[1] = by_source ? s->source : s->sha;
    l[1] = strlen(v[1]);
    v[2] = nkeys_buf;
    l[2] = strlen(nkeys_buf);
    for (int i = 0; i < argc; i++) {
        v[i + 3] = argv[i];
        l[i + 3] = lens ? lens[i] : strlen(argv[i]);
    }
    *out_v = v;
    *out_l = l;
    return BP_OK;
}

int redis_conn_eval(redis_conn *c, const redis_script *s, int nkeys, int argc, const char **argv,
                    const size_t *lens, redisReply **out, bp_error *err)
{
    const char **v = NULL;
    size_t *l = NULL;
    char nk[16];
    char what[96];
    redisReply *r = NULL;
    int rc;
    if (out) {
        *out = NULL;
    }
    snprintf(what, sizeof what, "script %s", s->name);
    if (eval_argv(s, false, nkeys, argc, argv, lens, nk, sizeof nk, &v, &l) != BP_OK) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    rc = exec_raw(c, what, argc + 3, v, l, &r, err);
    if (rc == BP_OK && redis_reply_is_noscript(r)) {
        /* The server lost its script cache (SCRIPT FLUSH, or a failover to a replica that never
         * saw the script) without dropping our connection. EVAL sends the source and caches it
         * again; NOSCRIPT guarantees the first attempt did not run. */
        freeReplyObject(r);
        r = NULL;
        v[0] = "EVAL";
        l[0] = 4;
        v[1] = s->source;
        l[1] = strlen(s->source);
        rc = exec_raw(c, what, argc + 3, v, l, &r, err);
    }
    free(v);
    free(l);
    if (rc != BP_OK) {
        return rc;
    }
    return finish_reply(r, what, out, err);
}

int redis_conn_append_eval(redis_conn *c, const redis_script *s, int nkeys, int argc,
                           const char **argv, const size_t *lens, bp_error *err)
{
    const char **v = NULL;
    size_t *l = NULL;
    char nk[16];
    int rc;
    if (eval_argv(s, false, nkeys, argc, argv, lens, nk, sizeof nk, &v, &l) != BP_OK) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    rc = redis_conn_append_argv(c, argc + 3, v, l, err);
    free(v);
    free(l);
    return rc;
}
